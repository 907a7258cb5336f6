/* Strict parsers for Kubernetes quantities and Spark memory strings. */
#include "common/quantity.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct suffix {
	const char *text;
	double factor;
};

static const struct suffix quantity_suffixes[] = {
	{"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0},
	{"Ti", 1099511627776.0}, {"Pi", 1125899906842624.0},
	{"Ei", 1152921504606846976.0},
	{"n", 1e-9}, {"u", 1e-6}, {"m", 1e-3}, {"", 1.0}, {"k", 1e3},
	{"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18},
};

/* Consumes [+-]?(digits(.digits?)?|.digits); returns chars read, 0 if none. */
static size_t scan_number(const char *s, int allow_fraction)
{
	size_t i = 0, int_digits = 0, frac_digits = 0;

	if (s[i] == '+' || s[i] == '-')
		i++;
	while (isdigit((unsigned char)s[i])) {
		i++;
		int_digits++;
	}
	if (allow_fraction && s[i] == '.') {
		i++;
		while (isdigit((unsigned char)s[i])) {
			i++;
			frac_digits++;
		}
	}
	return int_digits + frac_digits ? i : 0;
}

int gw_quantity_parse(const char *s, double *value)
{
	size_t n = scan_number(s, 1);
	const char *suffix = s + n;
	char number[65], *end;
	double v;

	if (n == 0 || n >= sizeof(number))
		return -1;
	/* Only the number: strtod alone would also eat an "e3" suffix. */
	memcpy(number, s, n);
	number[n] = '\0';
	v = strtod(number, &end);
	if (*end)
		return -1;
	if (*suffix == 'e' || *suffix == 'E') {
		size_t m = scan_number(suffix + 1, 0);
		long exp;

		if (m == 0 || suffix[1 + m] != '\0' || m > 4)
			return -1;
		exp = strtol(suffix + 1, NULL, 10);
		v *= pow(10.0, (double)exp);
	} else {
		size_t i;

		for (i = 0; i < sizeof(quantity_suffixes) / sizeof(quantity_suffixes[0]); i++)
			if (strcmp(suffix, quantity_suffixes[i].text) == 0)
				break;
		if (i == sizeof(quantity_suffixes) / sizeof(quantity_suffixes[0]))
			return -1;
		v *= quantity_suffixes[i].factor;
	}
	if (!isfinite(v))
		return -1;
	*value = v;
	return 0;
}

int gw_spark_memory_parse(const char *s, int64_t *bytes)
{
	static const struct {
		const char *text;
		int shift;
	} units[] = {
		{"b", 0}, {"k", 10}, {"kb", 10}, {"m", 20}, {"mb", 20},
		{"g", 30}, {"gb", 30}, {"t", 40}, {"tb", 40}, {"p", 50}, {"pb", 50},
	};
	int shift = 20; /* Spark reads a bare number as MiB */
	uint64_t v = 0;
	size_t i = 0;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	for (; isdigit((unsigned char)s[i]); i++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (s[i]) {
		size_t u;

		for (u = 0; u < sizeof(units) / sizeof(units[0]); u++)
			if (strcasecmp(s + i, units[u].text) == 0)
				break;
		if (u == sizeof(units) / sizeof(units[0]))
			return -1;
		shift = units[u].shift;
	}
	if (v > ((uint64_t)INT64_MAX >> shift))
		return -1;
	*bytes = (int64_t)(v << shift);
	return 0;
}

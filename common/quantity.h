/* Resource amounts as Kubernetes and Spark write them. */
#ifndef GW_QUANTITY_H
#define GW_QUANTITY_H

#include <stdint.h>

/* Kubernetes resource.Quantity syntax ("1500m", "2", "4Gi", "1e3", "128974848")
 * to its value in base units. Returns 0, or -1 on bad syntax or overflow. */
int gw_quantity_parse(const char *s, double *value);

/* Spark's size strings as spark.driver.memory takes them ("512m", "4g",
 * "1024" = MiB, "2gb"; case-insensitive) to bytes. Returns 0, or -1 on bad
 * syntax, a negative size or overflow. */
int gw_spark_memory_parse(const char *s, int64_t *bytes);

#endif

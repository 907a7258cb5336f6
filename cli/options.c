/* The command line's tables — commands and flags — and all that is made
 * from them: parsing (getopt_long), each command's usage, the Markdown
 * manual (docs/cli.md) and the bash and zsh completion scripts, so that
 * none of them can drift from the flags the commands take. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "common/yamljson.h"
#include "store/store.h"

#define DEFAULT_SERVER "http://127.0.0.1:8080"

enum command_index {
	K_SUBMIT, K_GET, K_LIST, K_LOGS, K_CANCEL, K_EVENTS, K_QUEUE, K_CLUSTERS, K_CORDON, K_DRAIN, K_UNCORDON,
	K_VERSION, K_HELP, K_COMPLETION, K_NCOMMANDS
};

/* What a command's positional arguments name, for completion. */
enum arg_kind { ARG_NONE, ARG_FILE, ARG_JOB, ARG_CLUSTER, ARG_COMMAND, ARG_SHELL };

static const struct cli_command commands[K_NCOMMANDS] = {
	[K_SUBMIT] = {"submit", "[APP [ARGS...]]", 0, -1,
		      "Submit a job: a job file (-f), or spark-submit's flags and APP, or both (the flags win).",
		      cli_cmd_submit},
	[K_GET] = {"get", "ID", 1, 1, "One job: state, placement, driver; -w prints each change until it ends.",
		   cli_cmd_get},
	[K_LIST] = {"list", "", 0, 0, "Jobs, newest first, a page at a time; -w prints changes as they happen.",
		    cli_cmd_list},
	[K_LOGS] = {"logs", "ID", 1, 1, "The driver's log; -f follows it to the driver's end.", cli_cmd_logs},
	[K_CANCEL] = {"cancel", "ID", 1, 1, "Cancel a job (a finished one is refused: exit 1).", cli_cmd_cancel},
	[K_EVENTS] = {"events", "ID", 1, 1, "A job's state changes, oldest first.", cli_cmd_events},
	[K_QUEUE] = {"queue", "", 0, 0, "The jobs waiting, in dispatch order, and why each waits.", cli_cmd_queue},
	[K_CLUSTERS] = {"clusters", "", 0, 0, "Pools and their clusters: rotation, health, weight, active jobs.",
			cli_cmd_clusters},
	[K_CORDON] = {"cordon", "CLUSTER", 1, 1, "Stop placing jobs on a cluster; its running jobs go on.",
		      cli_cmd_cordon},
	[K_DRAIN] = {"drain", "CLUSTER", 1, 1, "Cordon a cluster and move its queued jobs elsewhere.", cli_cmd_drain},
	[K_UNCORDON] = {"uncordon", "CLUSTER", 1, 1, "Place jobs on a cluster again.", cli_cmd_uncordon},
	[K_VERSION] = {"version", "", 0, 0, "The client's version and the server's.", cli_cmd_version},
	[K_HELP] = {"help", "[COMMAND]", 0, 1, "Usage of every command or of one; --markdown: the whole manual.",
		    cli_cmd_help},
	[K_COMPLETION] = {"completion", "bash|zsh", 1, 1,
			  "A shell completion script: source <(sparkgw completion bash).", cli_cmd_completion},
};

static const enum arg_kind arg_kinds[K_NCOMMANDS] = {
	[K_SUBMIT] = ARG_FILE, [K_GET] = ARG_JOB,         [K_LOGS] = ARG_JOB,         [K_CANCEL] = ARG_JOB,
	[K_EVENTS] = ARG_JOB,  [K_CORDON] = ARG_CLUSTER,  [K_DRAIN] = ARG_CLUSTER,    [K_UNCORDON] = ARG_CLUSTER,
	[K_HELP] = ARG_COMMAND, [K_COMPLETION] = ARG_SHELL,
};

#define ON(k) (1u << (k))
#define EVERY ((1u << K_NCOMMANDS) - 1)
#define PRINTING (ON(K_SUBMIT) | ON(K_GET) | ON(K_LIST) | ON(K_CANCEL) | ON(K_EVENTS) | ON(K_QUEUE) | \
		  ON(K_CLUSTERS) | ON(K_CORDON) | ON(K_DRAIN) | ON(K_UNCORDON))

struct flag {
	const char *name;
	char letter;         /* 0: long form only */
	const char *arg;     /* its value's name; NULL: a switch */
	unsigned commands;   /* ON() of those that take it */
	const char *choices; /* the values it takes, for completion */
	const char *help;
};

#define STATES "QUEUED DISPATCHING SUBMITTED RUNNING SUCCEEDED FAILED CANCELLING CANCELLED REJECTED"

static const struct flag flags[CLI_NFLAGS] = {
	[CLI_SERVER] = {"server", 's', "URL", EVERY, NULL,
			"the gateway (else $SPARKGW_URL, the config file, " DEFAULT_SERVER ")"},
	[CLI_TOKEN] = {"token", 0, "TOKEN", EVERY, NULL, "an API token (else $SPARKGW_TOKEN, the config file)"},
	[CLI_HELP] = {"help", 'h', NULL, EVERY, NULL, "this command's usage"},
	[CLI_OUTPUT] = {"output", 'o', "FORMAT", PRINTING, "json yaml name wide jsonpath=",
			"json, yaml, name (kind/ID per line), jsonpath=TEMPLATE (kubectl's), wide (more columns)"},
	[CLI_FILE] = {"file", 'f', "FILE", ON(K_SUBMIT), NULL,
		      "the job file, YAML or JSON (- for standard input), in the API's submission shape"},
	[CLI_CLASS] = {"class", 0, "CLASS", ON(K_SUBMIT), NULL, "the main class of a Java or Scala APP"},
	[CLI_NAME] = {"name", 0, "NAME", ON(K_SUBMIT), NULL,
		      "the job's name, a DNS label (default: from the class or APP's file name)"},
	[CLI_TYPE] = {"type", 0, "TYPE", ON(K_SUBMIT), "Java Scala Python R SQL",
		      "Java, Scala, Python, R or SQL (default: from APP: .py Python, .R R, .sql SQL, else Scala)"},
	[CLI_SQL] = {"sql", 'e', "STATEMENTS", ON(K_SUBMIT), NULL, "a SQL job's statements, instead of APP"},
	[CLI_CONF] = {"conf", 'c', "KEY=VALUE", ON(K_SUBMIT), NULL, "a Spark conf value (repeatable)"},
	[CLI_LABEL] = {"label", 0, "KEY=VALUE", ON(K_SUBMIT), NULL,
		       "a label: team, priority, workload, ... (repeatable)"},
	[CLI_SPARK_VERSION] = {"spark-version", 0, "VERSION", ON(K_SUBMIT), NULL,
			       "the Spark version (default without -f: 3.5)"},
	[CLI_IMAGE] = {"image", 0, "IMAGE", ON(K_SUBMIT), NULL, "the driver's and executors' container image"},
	[CLI_JARS] = {"jars", 0, "JARS", ON(K_SUBMIT), NULL, "comma-separated jars for the classpath"},
	[CLI_PY_FILES] = {"py-files", 0, "FILES", ON(K_SUBMIT), NULL,
			  "comma-separated .py, .zip or .egg files for the PYTHONPATH"},
	[CLI_FILES] = {"files", 0, "FILES", ON(K_SUBMIT), NULL,
		       "comma-separated files put in each executor's working directory"},
	[CLI_ARCHIVES] = {"archives", 0, "ARCHIVES", ON(K_SUBMIT), NULL,
			  "comma-separated archives unpacked in each executor's working directory"},
	[CLI_PACKAGES] = {"packages", 0, "COORDS", ON(K_SUBMIT), NULL,
			  "comma-separated Maven coordinates, group:artifact:version"},
	[CLI_REPOSITORIES] = {"repositories", 0, "URLS", ON(K_SUBMIT), NULL,
			      "comma-separated Maven repositories for --packages"},
	[CLI_DRIVER_MEMORY] = {"driver-memory", 0, "MEM", ON(K_SUBMIT), NULL, "the driver's memory, e.g. 2g"},
	[CLI_DRIVER_CORES] = {"driver-cores", 0, "N", ON(K_SUBMIT), NULL, "the driver's cores"},
	[CLI_EXECUTOR_MEMORY] = {"executor-memory", 0, "MEM", ON(K_SUBMIT), NULL, "each executor's memory, e.g. 4g"},
	[CLI_EXECUTOR_CORES] = {"executor-cores", 0, "N", ON(K_SUBMIT), NULL, "each executor's cores"},
	[CLI_NUM_EXECUTORS] = {"num-executors", 0, "N", ON(K_SUBMIT), NULL, "how many executors"},
	[CLI_PROXY_USER] = {"proxy-user", 0, "USER", ON(K_SUBMIT), NULL, "the user the job runs as"},
	[CLI_DRY_RUN] = {"dry-run", 0, NULL, ON(K_SUBMIT), NULL,
			 "where it would go and where each Spark conf value comes from; nothing is stored"},
	[CLI_WAIT] = {"wait", 'w', NULL, ON(K_SUBMIT), NULL,
		      "follow the job to its end, states on stderr: exit 0 only when it succeeds"},
	[CLI_SELECTOR] = {"selector", 'l', "SELECTOR", ON(K_LIST), NULL,
			  "a label selector, e.g. 'team=search,priority in (high,critical)'"},
	[CLI_STATE] = {"state", 0, "STATE", ON(K_LIST), STATES, "only jobs in this state"},
	[CLI_LIMIT] = {"limit", 0, "N", ON(K_LIST), NULL, "jobs a page (default 50, at most 1000)"},
	[CLI_CONTINUE] = {"continue", 0, "TOKEN", ON(K_LIST), NULL, "the page after the one that gave TOKEN"},
	[CLI_ALL] = {"all", 0, NULL, ON(K_LIST), NULL, "every page, not only the first"},
	[CLI_WATCH] = {"watch", 'w', NULL, ON(K_GET) | ON(K_LIST), NULL,
		       "after the first answer, print each change (get: until the job ends)"},
	[CLI_TIMEOUT] = {"timeout", 0, "SECONDS", ON(K_SUBMIT) | ON(K_GET) | ON(K_LIST), NULL,
			 "stop waiting (--wait, exit 1) or watching (-w, exit 0) after this long"},
	[CLI_FOLLOW] = {"follow", 'f', NULL, ON(K_LOGS), NULL,
			"stream the log to the driver's end, waiting for the driver to start"},
	[CLI_TAIL] = {"tail", 0, "N", ON(K_LOGS), NULL, "only the last N lines"},
	[CLI_MARKDOWN] = {"markdown", 0, NULL, ON(K_HELP), NULL, "the whole manual, as Markdown (docs/cli.md)"},
};

static const char exit_statuses[] =
	"0 done (`--wait`: the job succeeded), 1 the job did not succeed or the server refused (its problem "
	"said on stderr), 2 usage, 3 the server could not be reached";

static enum command_index command_index(const struct cli_command *cmd)
{
	return (enum command_index)(cmd - commands);
}

static const struct cli_command *find_command(const char *name)
{
	for (size_t i = 0; i < K_NCOMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static bool takes(const struct cli_command *cmd, enum cli_flag_id id)
{
	return flags[id].commands & ON(command_index(cmd));
}

static bool global(enum cli_flag_id id)
{
	return flags[id].commands == EVERY;
}

const char *cli_flag(const struct cli_ctx *x, enum cli_flag_id id)
{
	size_t n = json_array_size(x->given[id]);

	return n ? json_string_value(json_array_get(x->given[id], n - 1)) : NULL;
}

bool cli_flag_long(const struct cli_ctx *x, enum cli_flag_id id, long min, long *out)
{
	const char *text = cli_flag(x, id);
	char *end;

	long v;

	if (!text)
		return true;
	errno = 0;
	v = strtol(text, &end, 10);
	if (!*text || *end || errno || v < min) {
		fprintf(stderr, "sparkgw: --%s takes a whole number%s, not '%s'\n", flags[id].name,
			min > 0 ? " above 0" : "", text);
		return false;
	}
	*out = v;
	return true;
}

bool cli_deadline(const struct cli_ctx *x, time_t *deadline)
{
	long seconds = 0;

	if (!cli_flag_long(x, CLI_TIMEOUT, 1, &seconds))
		return false;
	*deadline = seconds ? time(NULL) + seconds : 0;
	return true;
}

/* How many words of argv a global option with a value takes there: 1 for
 * "--server=URL" or "-sURL", 2 for "--server URL" or "-s URL"; 0 when
 * a is none of them. */
static int global_option_words(const char *a)
{
	for (int id = 0; id < CLI_NFLAGS; id++) {
		const struct flag *f = &flags[id];
		size_t n = strlen(f->name);

		if (!global((enum cli_flag_id)id) || !f->arg)
			continue;
		if (!strncmp(a, "--", 2) && !strncmp(a + 2, f->name, n) && (a[2 + n] == '\0' || a[2 + n] == '='))
			return a[2 + n] ? 1 : 2;
		if (f->letter && a[0] == '-' && a[1] == f->letter)
			return a[2] ? 1 : 2;
	}
	return 0;
}

int cli_command_at(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		int words = global_option_words(argv[i]);

		if (!words)
			return find_command(argv[i]) ? i : 0;
		i += words - 1; /* and its value */
	}
	return 0;
}

/* ---- usage and the manual ---- */

/* "-f, --file FILE" */
static void flag_synopsis(enum cli_flag_id id, char *out, size_t len)
{
	const struct flag *f = &flags[id];

	if (f->letter)
		snprintf(out, len, "-%c, --%s%s%s", f->letter, f->name, f->arg ? " " : "", f->arg ? f->arg : "");
	else
		snprintf(out, len, "    --%s%s%s", f->name, f->arg ? " " : "", f->arg ? f->arg : "");
}

static void print_flags(FILE *out, const struct cli_command *cmd, bool globals)
{
	char synopsis[64];

	for (int id = 0; id < CLI_NFLAGS; id++)
		if (global((enum cli_flag_id)id) == globals && (globals || takes(cmd, (enum cli_flag_id)id))) {
			flag_synopsis((enum cli_flag_id)id, synopsis, sizeof(synopsis));
			fprintf(out, "  %-28s %s\n", synopsis, flags[id].help);
		}
}

static void command_synopsis(const struct cli_command *cmd, char *out, size_t len)
{
	snprintf(out, len, "sparkgw %s%s%s [options]", cmd->name, *cmd->args ? " " : "", cmd->args);
}

/* cmd's usage alone, or the list of commands when cmd is NULL. */
static void usage(FILE *out, const struct cli_command *cmd)
{
	char synopsis[128];

	if (cmd) {
		command_synopsis(cmd, synopsis, sizeof(synopsis));
		fprintf(out, "usage: %s\n%s\noptions:\n", synopsis, cmd->summary);
		print_flags(out, cmd, false);
	} else {
		fprintf(out, "usage: sparkgw [-s URL] [--token TOKEN] COMMAND [options]\ncommands:\n");
		for (size_t i = 0; i < K_NCOMMANDS; i++)
			fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
		fprintf(out, "sparkgw COMMAND --help shows its options.\n");
	}
	fprintf(out, "options of every command (before or after it):\n");
	print_flags(out, NULL, true);
	fprintf(out,
		"config file: $SPARKGW_CONFIG, else ~/.config/sparkgw/config.yaml, with keys server and token\n"
		"exit status: %s\n",
		exit_statuses);
}

/* A table cell: '|' would end it. */
static void markdown_cell(FILE *out, const char *text)
{
	for (; *text; text++)
		fputs(*text == '|' ? "\\|" : (char[]){*text, '\0'}, out);
}

static void markdown_flags(FILE *out, const struct cli_command *cmd, bool globals)
{
	char synopsis[64];

	fprintf(out, "| Option | What it does |\n|---|---|\n");
	for (int id = 0; id < CLI_NFLAGS; id++)
		if (global((enum cli_flag_id)id) == globals && (globals || takes(cmd, (enum cli_flag_id)id))) {
			const char *s = synopsis;

			flag_synopsis((enum cli_flag_id)id, synopsis, sizeof(synopsis));
			while (*s == ' ')
				s++;
			fprintf(out, "| `%s` | ", s);
			markdown_cell(out, flags[id].help);
			fprintf(out, " |\n");
		}
}

static void markdown(FILE *out)
{
	char synopsis[128];

	fprintf(out,
		"# The sparkgw command line\n\n"
		"<!-- Made by `sparkgw help --markdown` from the tables in cli/options.c; a test keeps them equal. -->\n\n"
		"`sparkgw COMMAND` is a client of a gateway's REST API (`api/openapi.yaml`), with kubectl's habits\n"
		"(`-o json|yaml|name|jsonpath=|wide`, `-l` selectors, `-w` watches, `TYPE/NAME` arguments) and\n"
		"spark-submit's flags for `submit`. The same binary is the gateway when given no command.\n\n"
		"The server is `-s`/`--server`, else `$SPARKGW_URL`, else `server:` in the config file\n"
		"(`$SPARKGW_CONFIG`, else `~/.config/sparkgw/config.yaml`), else %s; the token likewise\n"
		"(`--token`, `$SPARKGW_TOKEN`, `token:`). Tables fit the terminal, or `$COLUMNS` when set.\n\n"
		"Exit status: %s.\n\n"
		"Shell completion: `source <(sparkgw completion bash)` (or `zsh`); job IDs and cluster names\n"
		"are completed from the server.\n\n"
		"| Command | What it does |\n|---|---|\n",
		DEFAULT_SERVER, exit_statuses);
	for (size_t i = 0; i < K_NCOMMANDS; i++)
		fprintf(out, "| [`%s`](#sparkgw-%s) | %s |\n", commands[i].name, commands[i].name, commands[i].summary);
	fprintf(out, "\nOptions of every command, before or after it:\n\n");
	markdown_flags(out, NULL, true);
	for (size_t i = 0; i < K_NCOMMANDS; i++) {
		command_synopsis(&commands[i], synopsis, sizeof(synopsis));
		fprintf(out, "\n## sparkgw %s\n\n```\n%s\n```\n\n%s\n\n", commands[i].name, synopsis, commands[i].summary);
		markdown_flags(out, &commands[i], false);
	}
}

int cli_cmd_help(struct cli_ctx *x)
{
	const struct cli_command *cmd = x->nargs ? find_command(x->args[0]) : NULL;

	if (cli_flag(x, CLI_MARKDOWN)) {
		markdown(stdout);
		return 0;
	}
	if (x->nargs && !cmd) {
		fprintf(stderr, "sparkgw: no command '%s'\n", x->args[0]);
		usage(stderr, NULL);
		return CLI_EXIT_USAGE;
	}
	usage(stdout, cmd);
	return 0;
}

/* ---- completion ---- */

/* The words completing a command's arguments, as shell code. */
static const char *arg_words(enum arg_kind kind)
{
	switch (kind) {
	case ARG_JOB: return "$(_sparkgw_ask list --limit 200 -o name | sed s,^job/,,)";
	case ARG_CLUSTER: return "$(_sparkgw_ask clusters -o name | sed s,^cluster/,,)";
	case ARG_SHELL: return "bash zsh";
	default: return NULL;
	}
}

static void all_command_names(FILE *out)
{
	for (size_t i = 0; i < K_NCOMMANDS; i++)
		fprintf(out, "%s%s", i ? " " : "", commands[i].name);
}

static void bash_completion(FILE *out)
{
	fprintf(out,
		"# bash completion for sparkgw: source <(sparkgw completion bash)\n"
		"# Asks the server named on the line (or the defaults) for IDs and names.\n"
		"_sparkgw_ask() {\n"
		"\t\"${COMP_WORDS[0]}\" \"${_sparkgw_globals[@]}\" \"$@\" 2>/dev/null\n"
		"}\n"
		"_sparkgw() {\n"
		"\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd= i\n"
		"\tlocal -a _sparkgw_globals=()\n"
		"\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
		"\t\tcase ${COMP_WORDS[i]} in\n"
		"\t\t-s|--server|--token) _sparkgw_globals+=(\"${COMP_WORDS[i]}\" \"${COMP_WORDS[i+1]}\"); ((i++)) ;;\n"
		"\t\t-*) ;;\n"
		"\t\t*) [[ -z $cmd ]] && cmd=${COMP_WORDS[i]} ;;\n"
		"\t\tesac\n"
		"\tdone\n"
		"\tCOMPREPLY=()\n"
		"\tcase $prev in\n"
		"\t-s|--server|--token) return ;;\n"
		"\tesac\n"
		"\tcase $cmd in\n"
		"\t'') COMPREPLY=($(compgen -W '");
	all_command_names(out);
	fprintf(out, " --server --token --help' -- \"$cur\")) ;;\n");
	for (size_t k = 0; k < K_NCOMMANDS; k++) {
		const char *words = arg_words(arg_kinds[k]);

		fprintf(out, "\t%s)\n\t\tcase $prev in\n", commands[k].name);
		for (int id = 0; id < CLI_NFLAGS; id++) {
			const struct flag *f = &flags[id];

			if (!(f->commands & ON(k)) || !f->arg || global((enum cli_flag_id)id))
				continue;
			if (f->letter)
				fprintf(out, "\t\t-%c|", f->letter);
			else
				fprintf(out, "\t\t");
			if (f->choices)
				fprintf(out, "--%s) COMPREPLY=($(compgen -W '%s' -- \"$cur\")); return ;;\n", f->name,
					f->choices);
			else
				fprintf(out, "--%s) return ;;\n", f->name);
		}
		fprintf(out, "\t\tesac\n\t\tif [[ $cur == -* ]]; then\n\t\t\tCOMPREPLY=($(compgen -W '");
		for (int id = 0, first = 1; id < CLI_NFLAGS; id++)
			if (flags[id].commands & ON(k)) {
				if (flags[id].letter)
					fprintf(out, "%s-%c", first ? "" : " ", flags[id].letter);
				fprintf(out, "%s--%s", first && !flags[id].letter ? "" : " ", flags[id].name);
				first = 0;
			}
		fprintf(out, "' -- \"$cur\"))\n");
		if (arg_kinds[k] == ARG_COMMAND) {
			fprintf(out, "\t\telse\n\t\t\tCOMPREPLY=($(compgen -W '");
			all_command_names(out);
			fprintf(out, "' -- \"$cur\"))\n");
		} else if (words) {
			fprintf(out, "\t\telse\n\t\t\tCOMPREPLY=($(compgen -W \"%s\" -- \"$cur\"))\n", words);
		}
		fprintf(out, "\t\tfi ;;\n");
	}
	fprintf(out, "\tesac\n}\ncomplete -o default -F _sparkgw sparkgw\n");
}

/* A help text inside zsh's '...[text]...': no quote, no bracket. */
static void zsh_text(FILE *out, const char *text)
{
	for (; *text; text++)
		if (*text == '\'')
			fputs("'\\''", out);
		else if (*text == '[' || *text == ']')
			fprintf(out, "\\%c", *text);
		else
			fputc(*text, out);
}

static void zsh_flag(FILE *out, enum cli_flag_id id)
{
	const struct flag *f = &flags[id];

	fprintf(out, " \\\n\t\t\t");
	if (f->letter)
		fprintf(out, "'(-%c --%s)'{-%c,--%s}'[", f->letter, f->name, f->letter, f->name);
	else
		fprintf(out, "'--%s[", f->name);
	zsh_text(out, f->help);
	fprintf(out, "]");
	if (f->arg && f->choices)
		fprintf(out, ":%s:(%s)", f->arg, f->choices);
	else if (f->arg)
		fprintf(out, ":%s:%s", f->arg, !strcmp(f->arg, "FILE") ? "_files" : " ");
	fprintf(out, "'");
}

static void zsh_completion(FILE *out)
{
	fprintf(out,
		"#compdef sparkgw\n"
		"# zsh completion for sparkgw: source <(sparkgw completion zsh), or save it as _sparkgw on $fpath\n"
		"_sparkgw_ask() {\n"
		"\tlocal server=${opt_args[-s]:-${opt_args[--server]}}\n"
		"\t\"$_sparkgw_prog\" ${server:+--server \"$server\"} \"$@\" 2>/dev/null\n"
		"}\n"
		"_sparkgw() {\n"
		"\tlocal curcontext=$curcontext state line _sparkgw_prog=$words[1]\n"
		"\ttypeset -A opt_args\n"
		"\tlocal -a commands\n"
		"\tcommands=(\n");
	for (size_t k = 0; k < K_NCOMMANDS; k++) {
		fprintf(out, "\t\t'%s:", commands[k].name);
		zsh_text(out, commands[k].summary);
		fprintf(out, "'\n");
	}
	fprintf(out, "\t)\n\t_arguments -C");
	for (int id = 0; id < CLI_NFLAGS; id++)
		if (global((enum cli_flag_id)id) && id != CLI_HELP)
			zsh_flag(out, (enum cli_flag_id)id);
	fprintf(out, " \\\n\t\t\t'1: :->command' '*:: :->args'\n"
		     "\tcase $state in\n"
		     "\tcommand) _describe -t commands command commands ;;\n"
		     "\targs)\n"
		     "\t\tcase $words[1] in\n");
	for (size_t k = 0; k < K_NCOMMANDS; k++) {
		const char *words = arg_words(arg_kinds[k]);

		fprintf(out, "\t\t%s) _arguments", commands[k].name);
		for (int id = 0; id < CLI_NFLAGS; id++)
			if ((flags[id].commands & ON(k)) && (!global((enum cli_flag_id)id) || id == CLI_HELP))
				zsh_flag(out, (enum cli_flag_id)id);
		if (arg_kinds[k] == ARG_FILE)
			fprintf(out, " \\\n\t\t\t'1:APP:_files' '*:ARGS:_files'");
		else if (arg_kinds[k] == ARG_COMMAND) {
			fprintf(out, " \\\n\t\t\t'1:COMMAND:(");
			all_command_names(out);
			fprintf(out, ")'");
		}
		else if (words)
			fprintf(out, " \\\n\t\t\t\"1:%s:(%s)\"", commands[k].args, words);
		fprintf(out, " ;;\n");
	}
	fprintf(out, "\t\tesac ;;\n"
		     "\tesac\n"
		     "}\n"
		     "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then _sparkgw \"$@\"; else compdef _sparkgw sparkgw; fi\n");
}

int cli_cmd_completion(struct cli_ctx *x)
{
	if (!strcmp(x->args[0], "bash")) {
		bash_completion(stdout);
	} else if (!strcmp(x->args[0], "zsh")) {
		zsh_completion(stdout);
	} else {
		fprintf(stderr, "sparkgw: completion for bash or zsh, not '%s'\n", x->args[0]);
		return CLI_EXIT_USAGE;
	}
	return 0;
}

/* ---- parsing ---- */

/* server and token from the config file, where the flags and environment
 * left them unset. */
static void read_config(char **server, char **token)
{
	const char *path = getenv("SPARKGW_CONFIG"), *home = getenv("HOME"), *xdg = getenv("XDG_CONFIG_HOME");
	char buf[4096], err[GW_ERRLEN];
	json_t *doc = NULL;

	if (!path) {
		if (xdg && *xdg)
			snprintf(buf, sizeof(buf), "%s/sparkgw/config.yaml", xdg);
		else if (home && *home)
			snprintf(buf, sizeof(buf), "%s/.config/sparkgw/config.yaml", home);
		else
			return;
		if (access(buf, R_OK) != 0)
			return;
		path = buf;
	}
	if (gw_yaml_load_file(path, &doc, NULL, err) != GW_OK) {
		fprintf(stderr, "sparkgw: ignoring %s: %s\n", path, err);
		return;
	}
	if (!*server && json_is_string(json_object_get(doc, "server")))
		*server = strdup(json_string_value(json_object_get(doc, "server")));
	if (!*token && json_is_string(json_object_get(doc, "token")))
		*token = strdup(json_string_value(json_object_get(doc, "token")));
	json_decref(doc);
}

/* -o's value into x; false (said) when it is none of the formats. */
static bool parse_output(struct cli_ctx *x, const char *format)
{
	static const struct { const char *name; enum cli_output output; } formats[] = {
		{"json", CLI_OUT_JSON}, {"yaml", CLI_OUT_YAML}, {"wide", CLI_OUT_WIDE}, {"name", CLI_OUT_NAME},
	};
	char err[GW_ERRLEN];
	struct gw_buf unused;

	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (!strcmp(format, formats[i].name)) {
			x->output = formats[i].output;
			return true;
		}
	if (strncmp(format, "jsonpath=", 9)) {
		fprintf(stderr, "sparkgw: -o takes json, yaml, name, wide or jsonpath=TEMPLATE, not '%s'\n", format);
		return false;
	}
	gw_buf_init(&unused, 0);
	if (!cli_jsonpath(format + 9, NULL, &unused, err)) {
		fprintf(stderr, "sparkgw: -o %s: %s\n", format, err);
		return false;
	}
	x->output = CLI_OUT_JSONPATH;
	x->jsonpath = format + 9;
	return true;
}

/* getopt_long's tables for cmd: long options answer 256 + their id,
 * short ones their letter (by_letter maps it back). submit stops at APP,
 * as spark-submit does: what follows is the application's. */
static void getopt_tables(const struct cli_command *cmd, struct option *longs, char *shorts, int *by_letter)
{
	size_t n = 0;

	if (command_index(cmd) == K_SUBMIT)
		*shorts++ = '+';
	for (int id = 0; id < CLI_NFLAGS; id++) {
		const struct flag *f = &flags[id];

		if (!takes(cmd, (enum cli_flag_id)id))
			continue;
		longs[n++] = (struct option){f->name, f->arg ? required_argument : no_argument, NULL, 256 + id};
		if (f->letter) {
			*shorts++ = f->letter;
			if (f->arg)
				*shorts++ = ':';
			by_letter[(unsigned char)f->letter] = id;
		}
	}
	longs[n] = (struct option){NULL, 0, NULL, 0};
	*shorts = '\0';
}

int cli_main(int argc, char **argv)
{
	const struct cli_command *cmd = find_command(argv[0]);
	struct option longs[CLI_NFLAGS + 1];
	char shorts[2 * CLI_NFLAGS + 2];
	int by_letter[128], opt, rc = CLI_EXIT_USAGE;
	struct cli_ctx x = {.cmd = cmd};
	char *server = NULL, *token = NULL;

	if (!cmd) {
		usage(stderr, NULL);
		return CLI_EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof(by_letter) / sizeof(by_letter[0]); i++)
		by_letter[i] = -1;
	getopt_tables(cmd, longs, shorts, by_letter);
	optind = 1;
	while ((opt = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
		int id = opt >= 256 ? opt - 256 : opt > 0 && opt < 128 ? by_letter[opt] : -1;

		if (id < 0) { /* getopt said which option it did not know */
			fprintf(stderr, "usage: sparkgw %s %s [options] (sparkgw %s --help)\n", cmd->name, cmd->args,
				cmd->name);
			goto out;
		}
		if (!x.given[id])
			x.given[id] = json_array();
		json_array_append_new(x.given[id], json_string(optarg ? optarg : ""));
		if (id == CLI_HELP) {
			usage(stdout, cmd);
			rc = 0;
			goto out;
		}
		if (id == CLI_OUTPUT && !parse_output(&x, optarg))
			goto out;
	}
	x.args = argv + optind;
	x.nargs = argc - optind;
	if (x.nargs < cmd->min_args || (cmd->max_args >= 0 && x.nargs > cmd->max_args)) {
		fprintf(stderr, "usage: sparkgw %s %s [options] (sparkgw %s --help)\n", cmd->name, cmd->args, cmd->name);
		goto out;
	}
	if (cli_flag(&x, CLI_SERVER))
		server = strdup(cli_flag(&x, CLI_SERVER));
	else if (getenv("SPARKGW_URL"))
		server = strdup(getenv("SPARKGW_URL"));
	if (cli_flag(&x, CLI_TOKEN))
		token = strdup(cli_flag(&x, CLI_TOKEN));
	else if (getenv("SPARKGW_TOKEN"))
		token = strdup(getenv("SPARKGW_TOKEN"));
	read_config(&server, &token);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	x.client = cli_client_new(server ? server : DEFAULT_SERVER, token);
	if (!x.client) {
		fprintf(stderr, "sparkgw: out of memory\n");
		rc = CLI_EXIT_FAILED;
	} else {
		rc = cmd->run(&x);
	}
	cli_client_free(x.client);
	curl_global_cleanup();
out:
	for (int id = 0; id < CLI_NFLAGS; id++)
		json_decref(x.given[id]);
	free(server);
	free(token);
	return rc;
}

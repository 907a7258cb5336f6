/* The HTTP baseline of `make bench`: libmicrohttpd with the gateway's
 * thread model and flags, answering every request with the same 60-byte
 * JSON and doing nothing else. What the gateway serves is measured against
 * what this serves on the same machine in the same run.
 *
 * usage: bench-http-baseline HOST:PORT [THREADS]   (runs until SIGTERM) */
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char body[] = "{\"kind\":\"Baseline\",\"apiVersion\":\"v1\",\"status\":\"ok\",\"n\":1000}";

/* Answered on the request's second call, as the gateway does: queueing on
 * the first call makes libmicrohttpd 0.9.75 close keep-alive connections. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	static int seen;
	struct MHD_Response *resp = cls;

	(void)url;
	(void)method;
	(void)version;
	(void)upload;
	if (!*con_cls) {
		*con_cls = &seen;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	return MHD_queue_response(conn, MHD_HTTP_OK, resp);
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 2;
	char host[64];
	unsigned port;
	int fd, one = 1, sig;
	struct MHD_Response *resp;
	struct MHD_Daemon *d;
	sigset_t stop;

	if (argc < 2 || sscanf(argv[1], "%63[^:]:%u", host, &port) != 2 ||
	    inet_pton(AF_INET, host, &addr.sin_addr) != 1 || threads < 1) {
		fprintf(stderr, "usage: %s HOST:PORT [THREADS]\n", argv[0]);
		return 2;
	}
	addr.sin_port = htons((unsigned short)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(fd, 1024)) {
		perror("listen");
		return 1;
	}
	resp = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)(uintptr_t)body,
					       MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC,
			     0, NULL, NULL, on_request, resp,
			     MHD_OPTION_LISTEN_SOCKET, fd,
			     MHD_OPTION_THREAD_POOL_SIZE, threads,
			     MHD_OPTION_CONNECTION_LIMIT, 1024u,
			     MHD_OPTION_PER_IP_CONNECTION_LIMIT, 256u,
			     MHD_OPTION_CONNECTION_TIMEOUT, 30u,
			     MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "MHD_start_daemon failed\n");
		return 1;
	}
	printf("listening on %s:%u\n", host, port);
	fflush(stdout);
	sigwait(&stop, &sig);
	MHD_stop_daemon(d);
	MHD_destroy_response(resp);
	return 0;
}

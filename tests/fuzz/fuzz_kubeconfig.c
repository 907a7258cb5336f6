/* libFuzzer target: a kubeconfig file, loaded for its current context and
 * for a named one, as the gateway does for each cluster. */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "k8sclient/k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[GW_ERRLEN];
	struct k8s_config cfg;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/fuzz-kubeconfig-%d.yaml", (int)getpid());
	f = fopen(path, "wb");
	if (!f)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	if (k8s_kubeconfig_load(path, NULL, &cfg, err) == GW_OK)
		k8s_config_release(&cfg);
	if (k8s_kubeconfig_load(path, "fuzz", &cfg, err) == GW_OK)
		k8s_config_release(&cfg);
	unlink(path);
	return 0;
}

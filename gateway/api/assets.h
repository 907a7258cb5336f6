/* Files the gateway serves as they are (the dashboard), embedded at build
 * time from contrib/dashboard/. */
#ifndef GW_ASSETS_H
#define GW_ASSETS_H

#include <stddef.h>

struct gateway_asset {
	const char *path; /* "/ui/app.js" */
	const unsigned char *data;
	size_t len;
};

extern const struct gateway_asset gateway_assets[];
extern const size_t gateway_asset_count;

#endif

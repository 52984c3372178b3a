/* SPDX-License-Identifier: MIT */
/* The dashboard's files (--www), served beneath their directory only. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "handlers.h"
#include "response.h"

static const char *
content_type(const char *path)
{
	static const struct {
		const char	*ext, *type;
	} types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".mjs", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
		{ ".json", "application/json" },
		{ ".woff2", "font/woff2" },
	};
	const char *dot = strrchr(path, '.');

	for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(*types);
	    i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

/* The regular file rel beneath dir, never through a symbolic link; or -1. */
static int
open_asset(const char *dir, const char *rel, struct stat *st)
{
	int dirfd, fd = -1;

	if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		fd = pf_open_beneath(dirfd, rel, O_RDONLY, 0);
		close(dirfd);
	}
	if (fd != -1 && (fstat(fd, st) == -1 || !S_ISREG(st->st_mode))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/*
 * routes.c matched the path as a plain one (no dot segments, no hidden
 * files); the method is checked here, after the file is found, so that a
 * missing file is a 404 whatever the method.
 */
enum MHD_Result
assets_serve(const struct gw_call *call)
{
	struct MHD_Connection *c = call->c;
	const char *rel = strcmp(call->url, "/") == 0 ? "index.html" :
	    call->url + 1;
	struct MHD_Response *r;
	struct stat st;
	int fd;

	if (call->h->cfg.www_dir == NULL ||
	    (fd = open_asset(call->h->cfg.www_dir, rel, &st)) == -1)
		return resp_not_found(c);
	if (strcmp(call->method, "GET") != 0 &&
	    strcmp(call->method, "HEAD") != 0) {
		close(fd);
		return resp_not_allowed(c, "GET, HEAD");
	}
	if (st.st_size == 0) {
		close(fd);
		r = MHD_create_response_from_buffer(0, NULL,
		    MHD_RESPMEM_PERSISTENT);
	} else if ((r = MHD_create_response_from_fd64((uint64_t)st.st_size,
	    fd)) == NULL)
		close(fd);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", content_type(rel));
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	MHD_add_response_header(r, "Content-Security-Policy",
	    "default-src 'self'; img-src 'self' data:; "
	    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	return resp_queue(c, MHD_HTTP_OK, r);
}

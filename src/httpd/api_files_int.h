/* SPDX-License-Identifier: MIT */
/*
 * The Range parser of api_files.c, declared for its fuzz target
 * (tests/fuzz/fuzz_http.c); nothing else in the gateway calls them.
 */
#ifndef PF_API_FILES_INT_H
#define PF_API_FILES_INT_H

#include <stdbool.h>
#include <stdint.h>

/* A byte range of a file; whole unless a Range header asked otherwise. */
struct range {
	uint64_t	 first, len;
	bool		 partial;
	bool		 unsatisfiable;
};

/*
 * Reads a Range header value hdr (NULL: none) for a file of size bytes
 * into *r: one "bytes=" range, else the whole file. Any thread.
 */
void api_files_parse_range(const char *hdr, uint64_t size, struct range *r);

#endif

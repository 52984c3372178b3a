/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target over the users file (users.c): the file is loaded as
 * paraflowd --users does, each line is parsed as a verifier, and what
 * parses must format back to a line that parses to the same verifier.
 * With bit 0 of the first byte set, --add-user then adds a user to the
 * file: a file that loaded must still load, with that user in it. The
 * rest of the input is the file.
 */
#include "config.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "users.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[300];

/* Each line: parse, format, parse again; the two must agree. */
static void
round_trip(const char *text)
{
	struct auth_verifier v, w;
	char user[PROTO_MAX_USER + 1], again[PROTO_MAX_USER + 1];
	char *copy = strdup(text), *line, *save = NULL, *f;

	if (copy == NULL)
		return;
	for (line = strtok_r(copy, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (auth_verifier_parse(line, user, &v) != PF_OK)
			continue;
		if ((f = auth_verifier_format(user, &v)) == NULL)
			abort();
		if (auth_verifier_parse(f, again, &w) != PF_OK ||
		    strcmp(user, again) != 0 || v.iterations != w.iterations ||
		    v.saltlen != w.saltlen || memcmp(v.salt, w.salt,
		    v.saltlen) != 0 || memcmp(v.stored_key, w.stored_key,
		    PF_SHA256_LEN) != 0 || memcmp(v.server_key, w.server_key,
		    PF_SHA256_LEN) != 0)
			abort();
		free(f);
	}
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth_users *u = NULL, *after = NULL;
	enum pf_status loaded;
	char *text;
	int fd;

	if (size < 1)
		return 0;
	if (path[0] == '\0') {
		const char *tmp = getenv("TMPDIR");
		char dir[256];

		/* PF_FUZZ_LOG=1 shows the log, to follow one input. */
		pf_log_set_level(getenv("PF_FUZZ_LOG") ? PF_LOG_DEBUG :
		    PF_LOG_NONE);
		snprintf(dir, sizeof(dir), "%s/pf-fuzz-users-XXXXXX",
		    tmp ? tmp : "/tmp");
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(path, sizeof(path), "%s/users", dir);
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1 || write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	close(fd);
	loaded = auth_users_load(path, &u);
	if ((text = malloc(size)) == NULL)
		abort();
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	round_trip(text);
	free(text);
	if ((data[0] & 1) && auth_users_add(path, "fuzz", "pencil",
	    SCRAM_MIN_ITERATIONS) == PF_OK && loaded == PF_OK &&
	    (auth_users_load(path, &after) != PF_OK ||
	    auth_users_find(after, "fuzz") == NULL ||
	    auth_users_count(after) < auth_users_count(u)))
		abort();
	auth_users_free(after);
	auth_users_free(u);
	return 0;
}

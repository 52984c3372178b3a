/* SPDX-License-Identifier: MIT */
/* The known-servers file: host:port and the pin seen first, one a line. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fsutil.h"
#include "known.h"
#include "log.h"

#define KNOWN_MAX_FILE	(1024 * 1024)
#define KNOWN_HEADER	"# paraflow known servers: host:port and the " \
			"server's public-key pin,\n# recorded the first time " \
			"(trust on first use). Delete a line to accept\n# a " \
			"server's new key.\n"

void
known_key(const char *host, unsigned port, char *out, size_t cap)
{
	snprintf(out, cap, strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u",
	    host, port);
}

/*
 * Reads file into b (empty if it does not exist yet). Scans it for key:
 * *line gets the line it is on (0 if none), pin its pin.
 */
static enum pf_status
scan(const char *file, const char *key, struct pf_buf *b, unsigned *line,
    char pin[PF_TLS_PIN_LEN + 1])
{
	char *l = NULL;
	size_t cap = 0, klen = strlen(key);
	ssize_t n;
	unsigned no = 0;
	FILE *f;

	*line = 0;
	if ((f = fopen(file, "re")) == NULL)
		return errno == ENOENT ? PF_OK : PF_EIO;
	while ((n = getline(&l, &cap, f)) != -1) {
		no++;
		if (!pf_buf_add(b, l, (size_t)n))
			break;
		if (*line != 0 || (size_t)n <= klen ||
		    strncmp(l, key, klen) != 0 || l[klen] != ' ')
			continue;
		*line = no;
		snprintf(pin, PF_TLS_PIN_LEN + 1, "%.*s",
		    (int)strcspn(l + klen + 1, " \t\r\n"), l + klen + 1);
	}
	free(l);
	n = ferror(f);
	fclose(f);
	return n || b->failed ? PF_EIO : PF_OK;
}

enum pf_status
known_check(const char *file, const char *host, unsigned port,
    const char *pin, enum known_verdict *verdict,
    char old[PF_TLS_PIN_LEN + 1], unsigned *line)
{
	char key[300];
	struct pf_buf b;
	enum pf_status rc;

	known_key(host, port, key, sizeof(key));
	pf_buf_init(&b, KNOWN_MAX_FILE);
	if ((rc = scan(file, key, &b, line, old)) != PF_OK) {
		log_warn("%s: cannot read: %s", file, strerror(errno));
		goto out;
	}
	if (*line != 0) {
		*verdict = strcmp(old, pin) == 0 ? KNOWN_MATCH :
		    KNOWN_MISMATCH;
		goto out;
	}
	/* Appended through a whole new file: never a torn line. */
	rc = PF_EIO;
	if ((b.len == 0 && !pf_buf_add(&b, KNOWN_HEADER,
	    sizeof(KNOWN_HEADER) - 1)) ||
	    (b.len > 0 && b.p[b.len - 1] != '\n' && !pf_buf_add(&b, "\n", 1)) ||
	    !pf_buf_printf(&b, "%s %s\n", key, pin))
		goto out;
	if (pf_write_atomic(AT_FDCWD, file, b.p, b.len, 0600) == -1) {
		log_warn("%s: cannot record the server: %s", file,
		    strerror(errno));
		goto out;
	}
	*verdict = KNOWN_NEW;
	rc = PF_OK;
out:
	pf_buf_free(&b);
	return rc;
}

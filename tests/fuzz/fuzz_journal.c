/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target over what a server reads back from disk at start-up:
 * a staging area's session.json and journal, as a crash, a full disk or
 * an edit may have left them, through registry_load (recovery.c,
 * journal.c, session_restore). The input is a flags byte (bit 7: the
 * boot id changed, so every journaled chunk is read back and checked; bits
 * 0-5: KiB of data file), two bytes of session.json length, session.json,
 * and the journal's bytes.
 */
#include "config.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "counters.h"
#include "log.h"
#include "policy.h"
#include "registry.h"
#include "storage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define AREA	"0a1b2c3d-0000-4000-8000-00000000abcd"

static char root[256];
static int stagingfd = -1;
/* Made once: loading libmagic's database is slow. */
static struct policy *policy;
/* Every byte of data differs from its neighbours: like a real file. */
static uint8_t pattern[63 * 1024];

static void
put(int dirfd, const char *name, const void *p, size_t n)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);

	if (fd == -1 || write(fd, p, n) != (ssize_t)n)
		abort();
	close(fd);
}

/* Leaves the staging directory with nothing but the boot id file. */
static void
clear_area(void)
{
	int fd = openat(stagingfd, AREA, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd != -1) {
		unlinkat(fd, "session.json", 0);
		unlinkat(fd, "data", 0);
		unlinkat(fd, "journal", 0);
		close(fd);
		unlinkat(stagingfd, AREA, AT_REMOVEDIR);
	}
}

static void
setup(void)
{
	const char *tmp = getenv("TMPDIR");
	struct storage *s;
	int rootfd;

	/* PF_FUZZ_LOG=1 shows the log, to follow one input. */
	pf_log_set_level(getenv("PF_FUZZ_LOG") ? PF_LOG_DEBUG : PF_LOG_NONE);
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7 + (i >> 8));
	snprintf(root, sizeof(root), "%s/pf-fuzz-journal-XXXXXX",
	    tmp ? tmp : "/tmp");
	/* storage_open makes .staging; the boot id file is its own. */
	if (mkdtemp(root) == NULL || storage_open(root, STORAGE_SYNC_NONE,
	    &s) != PF_OK)
		abort();
	storage_close(s);
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd == -1 || (stagingfd = openat(rootfd, ".staging",
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		abort();
	close(rootfd);
}

/* The staging area the input describes. */
static bool
write_area(const uint8_t *data, size_t size)
{
	size_t metalen;
	int dirfd;

	if (size < 3 || (metalen = (size_t)data[1] << 8 | data[2]) >
	    size - 3)
		return false;
	if (data[0] & 0x80)
		unlinkat(stagingfd, ".boot", 0);
	if (mkdirat(stagingfd, AREA, 0700) == -1 ||
	    (dirfd = openat(stagingfd, AREA, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1)
		abort();
	put(dirfd, "session.json", data + 3, metalen);
	put(dirfd, "data", pattern, (size_t)(data[0] & 0x3f) * 1024);
	put(dirfd, "journal", data + 3 + metalen, size - 3 - metalen);
	close(dirfd);
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct counters counters = { 0 };
	struct storage *s = NULL;
	struct registry *r;

	if (stagingfd == -1)
		setup();
	if (!write_area(data, size))
		return 0;
	if (policy == NULL && (policy = policy_new(NULL, NULL)) == NULL)
		abort();
	if ((r = registry_new(&(struct registry_limits){ 4, 4, 0, 100 },
	    &counters)) == NULL ||
	    storage_open(root, STORAGE_SYNC_NONE, &s) != PF_OK)
		abort();
	registry_load(r, s, policy, 3600);
	registry_free(r);
	storage_close(s);
	clear_area();
	return 0;
}

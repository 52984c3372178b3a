/* SPDX-License-Identifier: MIT */
/* Parsing of numeric options and reading of secrets off argv. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include "args.h"
#include "digest.h"
#include "log.h"

enum pf_status
pf_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (s == NULL || !isdigit((unsigned char)*s))
		return PF_EUSAGE;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return PF_EUSAGE;
	*out = v;
	return PF_OK;
}

void
pf_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", pf_log_prog());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n",
	    pf_log_prog());
	exit(2);
}

unsigned
pf_arg_uint(const char *opt, const char *arg, unsigned min, unsigned max)
{
	uint64_t v;

	if (pf_parse_uint(arg, min, max, &v) != PF_OK)
		pf_usage_error("bad value for --%s", opt);
	return (unsigned)v;
}

enum pf_status
pf_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (s == NULL || !isdigit((unsigned char)*s))
		return PF_EUSAGE;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return PF_EUSAGE;
	switch (toupper((unsigned char)*end)) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	default:
		return PF_EUSAGE;
	}
	if (*end != '\0') {
		end++;
		/* Accept "4M", "4MB" and "4MiB" alike. */
		if (strcasecmp(end, "iB") == 0 || strcasecmp(end, "B") == 0)
			end += strlen(end);
		if (*end != '\0')
			return PF_EUSAGE;
	}
	if (shift > 0 && v > (UINT64_MAX >> shift))
		return PF_EUSAGE;
	*out = (uint64_t)v << shift;
	return PF_OK;
}

enum pf_status
pf_read_secret_fd(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	char c;

	for (;;) {
		ssize_t r = read(fd, &c, 1);

		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return PF_EIO;
		if (r == 0 || c == '\n')
			break;
		if (n + 1 >= cap) {
			pf_wipe(buf, cap);
			return PF_EUSAGE;
		}
		buf[n++] = c;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return n == 0 ? PF_EUSAGE : PF_OK;
}

enum pf_status
pf_read_secret_file(const char *path, char *buf, size_t cap)
{
	enum pf_status rc;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return PF_EIO;
	rc = pf_read_secret_fd(fd, buf, cap);
	close(fd);
	return rc;
}

enum pf_status
pf_read_secret_tty(const char *prompt, char *buf, size_t cap)
{
	struct termios old, quiet;
	enum pf_status rc;
	int fd;

	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC)) == -1)
		return PF_EIO;
	if (tcgetattr(fd, &old) == -1) {
		close(fd);
		return PF_EIO;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	if (write(fd, prompt, strlen(prompt)) < 0 ||
	    tcsetattr(fd, TCSAFLUSH, &quiet) == -1) {
		close(fd);
		return PF_EIO;
	}
	rc = pf_read_secret_fd(fd, buf, cap);
	tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0)
		rc = PF_EIO;
	close(fd);
	return rc;
}

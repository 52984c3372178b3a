/* SPDX-License-Identifier: MIT */
/* Command-line values: numbers, sizes and secrets read without argv. */
#ifndef PF_ARGS_H
#define PF_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Parses a decimal integer in [min, max]. PF_EUSAGE if it is not one. */
enum pf_status pf_parse_uint(const char *s, uint64_t min, uint64_t max,
    uint64_t *out);

/*
 * Prints "prog: message" and a pointer to --help on stderr and exits with
 * status 2. prog is the name given to pf_log_set_prog.
 */
void pf_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* Parses option --opt's value in [min, max], or exits as pf_usage_error. */
unsigned pf_arg_uint(const char *opt, const char *arg, unsigned min,
    unsigned max);

/*
 * Parses a size with an optional binary suffix K, M, G or T (KiB...),
 * e.g. "4M". PF_EUSAGE on garbage or overflow.
 */
enum pf_status pf_parse_size(const char *s, uint64_t *out);

/*
 * Reads one line (without its newline) of at most cap - 1 bytes from fd
 * into buf. PF_EUSAGE if the line is empty or too long, PF_EIO on error.
 */
enum pf_status pf_read_secret_fd(int fd, char *buf, size_t cap);

/* Like pf_read_secret_fd on the file at path. */
enum pf_status pf_read_secret_file(const char *path, char *buf, size_t cap);

/*
 * Prompts on the terminal and reads a line with echo off. PF_EIO if there
 * is no terminal.
 */
enum pf_status pf_read_secret_tty(const char *prompt, char *buf, size_t cap);

#endif

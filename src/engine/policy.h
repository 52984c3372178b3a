/* SPDX-License-Identifier: MIT */
/* What may be stored: file names and the refusal of executables. */
#ifndef PF_POLICY_H
#define PF_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "status.h"

#define POLICY_MAX_CLIENT_NAME	4096	/* bytes of the name as sent */
#define POLICY_DEFAULT_EXTS	"exe,sh,bash,zsh,csh,ksh,fish,bat,cmd,com," \
	"msi,msp,ps1,psm1,dll,scr,cpl,vbs,vbe,jse,wsf,wsh,hta,jar,apk," \
	"appimage,run"

struct policy;

/*
 * Returns a new policy refusing the comma-separated extensions in exts
 * (without dots, matched case-insensitively), or POLICY_DEFAULT_EXTS when
 * exts is NULL. An empty string refuses no extension. NULL on a malformed
 * list or ENOMEM.
 */
struct policy *policy_new(const char *exts);

void policy_free(struct policy *p);

/*
 * Turns the name a client sent (len bytes, which may hold NULs) into a
 * safe base name in out (capacity PROTO_MAX_NAME + 1):
 *  - PF_EBADNAME if it is empty, holds a NUL or invalid UTF-8 (overlong
 *    forms and surrogates included), or nothing usable remains;
 *  - otherwise only the part after the last '/' or '\' is kept; control
 *    characters (C0, DEL, C1) and bidi/invisible format characters
 *    (U+200B-U+200F, U+202A-U+202E, U+2066-U+2069, U+061C, U+FEFF) become
 *    '_'; leading and trailing spaces and trailing dots are dropped; a
 *    leading '.' becomes '_'; "." and ".." are refused; the result is cut
 *    to PROTO_MAX_NAME bytes at a character boundary, keeping the
 *    extension where it is short (at most 16 bytes).
 * The result never contains '/', '\', NUL or control characters and is
 * never "." or "..".
 */
enum pf_status policy_sanitize_name(const char *in, size_t len, char *out);

/*
 * PF_EFORBIDDEN if name's last extension (case-insensitive) is refused by
 * p, else PF_OK. name is a sanitized name.
 */
enum pf_status policy_check_name(const struct policy *p, const char *name);

/*
 * PF_EFORBIDDEN if head (the first n bytes of the file) starts like an
 * executable: ELF, PE/MZ, Mach-O (thin and fat, both byte orders) or a
 * "#!" script; else PF_OK.
 */
enum pf_status policy_check_content(const uint8_t *head, size_t n);

#endif

/* SPDX-License-Identifier: MIT */
/* What may be stored: file names, and the refusal of executables. */
#ifndef PF_POLICY_H
#define PF_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "status.h"

#define POLICY_MAX_CLIENT_NAME	4096	/* bytes of the name as sent */
#define POLICY_WHY_MAX		200	/* bytes of a refusal's reason */
/*
 * Executables and scripts of Windows, macOS and Linux, and the files that
 * run one by a click (shortcuts, installers, registry files). Not "bin":
 * it names disk images, firmware and plain data as often; ELF content is
 * refused whatever the name. docs/security.md says why each is here.
 */
#define POLICY_DEFAULT_EXTS \
	"exe,dll,com,scr,pif,cpl,msc,msi,msp,mst,gadget,application," \
	"bat,cmd,ps1,psm1,psd1,ps1xml,vb,vbs,vbe,js,jse,ws,wsf,wsc,wsh," \
	"hta,lnk,url,scf,reg,inf,jar,class,py,pyc,pyo,pyw,pyz,pl,pm," \
	"rb,php,phar,phtml,lua,tcl,sh,bash,zsh,csh,tcsh,ksh,fish," \
	"command,tool,app,scpt,workflow,dylib,so,elf,ko,deb,rpm,apk," \
	"appimage,run,desktop,wasm"

struct policy;

/*
 * Returns a new policy refusing the comma-separated extensions in
 * forbidden (without dots, compared after the folds of namekey.h), or
 * POLICY_DEFAULT_EXTS when it is NULL, except those in allow (same form;
 * NULL or "" for none), which also let in the script content tied to
 * them (allow "py": Python source). An empty forbidden refuses no
 * extension. Loads libmagic's database and ICU's data once. NULL on a
 * malformed list, ENOMEM, or a library that cannot start.
 */
struct policy *policy_new(const char *forbidden, const char *allow);

void policy_free(struct policy *p);

/* p's folds of names (namekey.h), made once for all: borrowed. */
const struct namekey *policy_namekey(const struct policy *p);

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
 * PF_EFORBIDDEN, with the rule in why (cap bytes, POLICY_WHY_MAX is
 * enough; printable ASCII), if p refuses the upload of client (the name
 * as sent, len bytes of valid UTF-8 without NUL) stored as safe (its
 * policy_sanitize_name form). Each is read, as its base name, like
 * Windows and a reader would: NFKC casefold, default-ignorable characters
 * dropped, and from the first ':' (an NTFS stream, "a.exe::$DATA") and
 * trailing dots and spaces cut off; then
 *  - a reserved device name (CON, PRN, AUX, NUL, CONIN$, CONOUT$,
 *    COM1-9, LPT1-9), with or without extension, is refused;
 *  - the last extension, also folded to its UTS #39 skeleton (Cyrillic
 *    "ѕ" is "s"), is refused if a forbidden one has the same skeleton and
 *    no allowed one does.
 * PF_EBADNAME if ICU refuses the text, PF_ENOMEM; else PF_OK. Any thread.
 */
enum pf_status policy_check_names(const struct policy *p,
    const char *client, size_t len, const char *safe, char *why,
    size_t cap);

/* policy_check_names() for one name (NUL-terminated), without the why. */
enum pf_status policy_check_name(const struct policy *p, const char *name);

/*
 * The fast first pass over head (the first n bytes of the file), which
 * needs no policy: PF_EFORBIDDEN if it starts like native code (ELF,
 * PE/MZ, Mach-O thin and fat, both byte orders), WebAssembly, or a "#!"
 * script (after a UTF-8 byte order mark and white space); else PF_OK.
 */
enum pf_status policy_check_content(const uint8_t *head, size_t n);

/*
 * PF_EFORBIDDEN, with the rule in why (cap bytes), if p refuses a file
 * whose first n bytes are head: the first pass above (native code always;
 * WebAssembly unless allowed), then libmagic's MIME type of head (from
 * its "#!" on, for a script) against the executables and scripts p
 * refuses, unless allowed through their extension; a "#!" libmagic gives
 * no script type is refused too. PF_EINTERNAL (why says so) if libmagic
 * failed on head: a new upload is refused for it, a recovered one kept.
 * Else PF_OK. Any thread (libmagic calls are serialized).
 */
enum pf_status policy_check_head(const struct policy *p,
    const uint8_t *head, size_t n, char *why, size_t cap);

#endif

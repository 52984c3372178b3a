/* SPDX-License-Identifier: MIT */
/* "paraflow fetch": downloads a finished upload and checks its receipt. */
#ifndef PF_FETCH_H
#define PF_FETCH_H

#include "remote.h"

/*
 * Downloads the file of session id (a valid id) to out, or to a file named
 * after the session id if out is NULL; never to a name the server gives.
 * The bytes go to out.part (never through a symbolic or hard link), which
 * a later run resumes with a Range request; out appears, by rename, only
 * once the receipt of what arrived equals the session's. A .part whose
 * receipt is wrong is removed. Returns the exit status.
 */
int fetch_run(const struct remote_opts *o, const char *id, const char *out);

#endif

// SPDX-License-Identifier: MIT
// One upload with tus-js-client (from tests/node, or PF_NODE_MODULES),
// under node, for t_tus.sh:
//   node tus.mjs FILE ENDPOINT USER PASS [PARALLEL [STOP_AT [CHUNK]]]
// PARALLEL > 1 splits the file into that many partial uploads joined by
// concatenation. STOP_AT > 0: the process kills itself (SIGKILL, nothing
// flushed) once that many bytes are sent. CHUNK > 0: PATCHes of that
// many bytes (tus-js-client's chunkSize), each answered before the next,
// so no more than that is on its way when the process dies. The upload URL is kept in
// FILE.tusurls (tus-js-client's FileUrlStorage), so a second run resumes
// it. Prints "url URL", "resumed_from N" (the Upload-Offset of the first
// PATCH: what was not sent again), "sent N" and "done" on stdout; exit
// status 2 if tus-js-client is missing, 1 on an upload error.
import fs from 'node:fs';
import path from 'node:path';
import { loadModule } from './driver.mjs';

const [file, endpoint, user, pass, par = '1', stopAt = '0', chunk = '0'] =
  process.argv.slice(2);
const tus = loadModule('tus-js-client');
if (tus === null) {
  console.log('skip\ttus-js-client not found');
  process.exit(2);
}
const parallel = Number(par);
const stop = Number(stopAt);
const auth = 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
let firstPatch = null;
let sent = 0;

const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  metadata: { filename: path.basename(file) },
  headers: { Authorization: auth },
  parallelUploads: parallel,
  chunkSize: Number(chunk) > 0 ? Number(chunk) : Infinity,
  retryDelays: [0, 500, 1000, 2000],
  storeFingerprintForResuming: true,
  removeFingerprintOnSuccess: false,
  urlStorage: new tus.FileUrlStorage(file + '.tusurls'),
  onBeforeRequest(req) {
    if (req.getMethod() === 'PATCH' && firstPatch === null)
      firstPatch = Number(req.getHeader('Upload-Offset'));
  },
  onUploadUrlAvailable() {
    if (upload.url)
      console.log(`url ${upload.url}`);
  },
  onProgress(bytes) {
    sent = bytes;
    if (stop > 0 && bytes >= stop)
      process.kill(process.pid, 'SIGKILL');
  },
  onError(err) {
    console.log(`error ${String(err).replace(/\s+/g, ' ')}`);
    process.exit(1);
  },
  onSuccess() {
    console.log(`url ${upload.url}`);
    console.log(`resumed_from ${firstPatch ?? 0}`);
    console.log(`sent ${sent}`);
    console.log('done');
  },
});

const previous = await upload.findPreviousUploads();
if (previous.length > 0)
  upload.resumeFromPreviousUpload(previous[0]);
upload.start();

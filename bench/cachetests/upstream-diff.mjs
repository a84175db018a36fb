// upstream-diff.mjs — where the npm package's test (http-cache-tests@0.4.5) expects something
// other than the suite's current git version, whose results cache-tests.fyi shows.
// summarize.mjs prints the note under a listed test, and counts the ⛔ whose requirement the
// current suite no longer makes (outdated: true). Each entry was checked against the
// repository's current tests/*.mjs; add one only after reading both versions.
const outdated = note => ({ outdated: true, note })
const same = note => ({ outdated: false, note })
export default {
  // Age parsing: 0.4.5 wants an invalid or list-valued Age to make the response stale
  // (not_cached); the current suite wants an invalid Age ignored and, for several values,
  // the first one used (expected cached).
  'age-parse-nonnumeric': outdated('current suite expects the OPPOSITE: ignore `Age: abc` and reuse (cached) — do not "fix"'),
  'age-parse-negative': outdated('current suite expects the OPPOSITE: ignore `Age: -7200` and reuse (cached) — do not "fix"'),
  'age-parse-float': outdated('current suite expects the OPPOSITE: ignore `Age: 7200.0` and reuse (cached) — do not "fix"'),
  'age-parse-prefix-twoline': outdated('current suite expects the OPPOSITE: use the first Age line (0) and reuse (cached) — do not "fix"'),
  'age-parse-dup-0': outdated('current suite expects the OPPOSITE: `Age: 0, 0` is fresh (cached) — do not "fix"'),
  'age-parse-dup-0-twoline': outdated('current suite expects the OPPOSITE: two `Age: 0` lines are fresh (cached) — do not "fix"'),
  'age-parse-dup-old': outdated('current suite tests two `Age: 3600` lines with max-age=10000 and expects cached (first value used); 0.4.5\'s one-line `3600, 3600` wanting stale has no counterpart — do not "fix"'),
  'age-parse-suffix': same('current suite agrees: `Age: 7200, 0` (one line) is stale (not_cached)'),
  'age-parse-suffix-twoline': same('current suite agrees: first Age line (7200) wins, stale (not_cached)'),
  'age-parse-prefix': same('current suite agrees: `Age: 0, 7200` (one line) is fresh (cached)'),
  'age-parse-parameter': outdated('current suite: kind check (not required); expects not_cached'),
  'age-parse-numeric-parameter': outdated('current suite: kind check (not required); expects not_cached'),
  // Update upon 304: 0.4.5 marks Content-Encoding, Content-MD5, Content-Range and ETag
  // noUpdate (required "must not update"); the current header list makes them kind check
  // ("Does HTTP cache update ...?", Y when updated). Required there: Test-Header,
  // X-Test-Header, Content-Foo, X-Content-Foo, Cache-Control must update; Content-Length
  // must not.
  '304-etag-update-response-Content-Encoding': outdated('current suite: kind check (Y when updated from the 304), not required — updating is fine'),
  '304-etag-update-response-Content-MD5': outdated('current suite: kind check (Y when updated from the 304), not required — updating is fine'),
  '304-etag-update-response-Content-Range': outdated('current suite: kind check (Y when updated from the 304), not required — updating is fine'),
  '304-etag-update-response-ETag': outdated('current suite: kind check (Y when updated from the 304), not required — updating is fine'),
  '304-etag-update-response-Content-Length': same('current suite agrees: required, must NOT update Content-Length from a 304'),
  'other-date-update': same('current suite: same requirement (with max-age), plus other-date-update-expires (with Expires, required)')
}


// Package deploy is edge's deploy agent: it manages the releases of one
// node on its local disk and switches between them atomically. It talks to
// edge only over HTTP and imports no other package of this module.
//
// # Layout
//
// A deploy root holds:
//
//	current -> releases/<id>     a RELATIVE symbolic link (the tree may be moved or bind-mounted)
//	releases/<id>/               complete releases only
//	releases/.staging-<id>/      a release being built (never a candidate for anything)
//	releases/.trash-<id>/        a release being deleted
//	shared/                      persistent files and directories linked into every release
//	.deploy/lock                 flock(2) target; .deploy/lock.holder names the holder
//	.deploy/state.json           statuses and activation order (replaced atomically)
//	.deploy/journal.jsonl        append-only log of every operation and hook
//	.deploy/tmp/                 uploads and temporary files (same file system)
//
// Release ids match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$; any other name in
// releases/ is ignored. Releases are ordered by the sequence recorded in
// state.json (preparation and activation order) with the id as the
// tiebreak, never by modification time.
//
// # Operations
//
// Every mutating operation takes an exclusive, non-blocking flock on
// .deploy/lock (the kernel drops it when the process dies, so there are no
// stale locks; a second operation fails with ErrBusy naming the holder),
// runs Recover first, and honours Options.DryRun by printing its plan
// (renames, links, hook commands) and changing nothing.
//
//   - Prepare unpacks a directory, a .tar.gz (sha256 checked), a git
//     revision or an uploaded stream into releases/.staging-<id>, refusing
//     entries that escape, absolute paths, links pointing outside and
//     devices; links the shared paths with relative links; runs the build
//     hooks with a timeout (the hook's process group is killed); and only
//     then renames staging to releases/<id> and fsyncs releases/. Any
//     failure removes staging and records the id as failed. It refuses to
//     start below Config.MinFreeBytes of free space.
//   - Activate creates .current.<random> -> releases/<id> next to current
//     and renames it over current (rename(2) replaces current in one step),
//     fsyncs the root, updates state.json atomically, journals, and runs
//     the activate hooks.
//   - Rollback returns to the last good release (or --to one), never to a
//     failed, partial or bad one, and marks the release it leaves as bad.
//   - Cleanup keeps current, the previous good release and the Keep newest
//     good releases; bad ones do not count. Deletion renames to
//     .trash-<id> first; a deletion error is a warning.
//   - Recover removes stale .current.* links, .staging-* directories and
//     temporary files, finishes .trash-* deletions, reconciles state.json
//     with the current link, and repoints a dangling current to the last
//     good release.
//   - Status reads everything without taking the lock.
//
// NewAgent serves these operations over HTTP for a remote orchestrator.
//
// # PHP-FPM, OPcache and $realpath_root
//
// PHP caches compiled scripts (OPcache) and resolved paths (the realpath
// cache) by path. If the web server passes SCRIPT_FILENAME through the
// current link, PHP workers keep resolving it to the old release after the
// switch and may serve old code or mix two releases. Resolve the link once
// per request in the web server instead, so each request sees one release
// by its real path:
//
//	root /srv/app/current/public;
//	fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;
//	fastcgi_param DOCUMENT_ROOT   $realpath_root;
//
// $realpath_root resolves only the root directive, so current must be (an
// ancestor of) the document root. With that in place no FPM reload is
// needed; otherwise add an activate hook that resets OPcache inside FPM
// (for example with cachetool over the FastCGI socket: `php -r
// opcache_reset();` on the command line does not touch FPM's cache) or
// reloads php-fpm (which may drop in-flight requests unless the node is
// drained first).
package deploy

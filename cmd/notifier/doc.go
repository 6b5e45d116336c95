// Command notifier follows the builder's event stream and tells a person
// through ntfy when a build, an evaluation or a deploy fails and when it
// recovers; it pokes agents when their host has a new desired closure and
// wakes sleeping hosts with Wake-on-LAN. Its cursor into the stream is kept
// in --state-dir with the notification in flight, if any; a notifier killed
// (even with SIGKILL) after ntfy took a message and before its state reached
// the disk finds that message again in ntfy's message cache when it restarts.
// So a restart neither misses nor repeats a notification, as long as the
// token may read the topic and the server keeps a cache (ntfy's default);
// where it cannot look, it warns and publishes again (at least once).
//
//	notifier --builder-url URL[,URL…] --state-dir DIR [--ntfy-url URL --ntfy-topic T
//	         --ntfy-token-file FILE] [--config FILE] [--poke-token-file FILE]
//	         [--metrics-listen ADDR]
package main

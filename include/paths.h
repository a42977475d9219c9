/* paths.h - the file locations compiled into the daemons' defaults.
 *
 * A development build (make) carries the default PREFIX's locations, a
 * binary linked by make install carries its own PREFIX's (the Makefile
 * links it with common/paths.c compiled for that PREFIX, docs/DEPLOYMENT.md
 * "Installed files"). Nothing else in the code may spell an install path. */
#ifndef VEIL_PATHS_H
#define VEIL_PATHS_H

/* Default dashboard_dir: DATADIR/dashboard. */
extern const char veil_default_dashboard_dir[];
/* Default tracker_js: DATADIR/veil.js in an installed binary, "" (not
 * served) in a development build, which has no installed veil.js. */
extern const char veil_default_tracker_js[];
/* Default referrer_db of the aggregator: DATADIR/referrers.json. */
extern const char veil_default_referrer_db[];
/* Default iso_codes_dir of the aggregator: where Debian's iso-codes puts
 * its JSON (make ISO_CODES_DIR=... for another system's location). */
extern const char veil_default_iso_codes_dir[];

#endif

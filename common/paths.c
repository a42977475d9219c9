/* paths.c - the install locations behind the daemons' path defaults
 * (include/paths.h). Compiled twice: once into libveil_common.a for the
 * development build, and once per install layout by make install with
 * VEIL_INSTALLED_DATADIR set, linked ahead of that archive. It must define
 * nothing but these paths, or the two copies would clash at link time. */
#include "paths.h"

/* Debian's iso-codes (Makefile ISO_CODES_DIR): not part of Veil's PREFIX. */
#ifndef VEIL_ISO_CODES_DIR
#define VEIL_ISO_CODES_DIR "/usr/share/iso-codes/json"
#endif
const char veil_default_iso_codes_dir[] = VEIL_ISO_CODES_DIR;

#ifdef VEIL_INSTALLED_DATADIR
const char veil_default_dashboard_dir[] = VEIL_INSTALLED_DATADIR "/dashboard";
const char veil_default_tracker_js[] = VEIL_INSTALLED_DATADIR "/veil.js";
const char veil_default_referrer_db[] = VEIL_INSTALLED_DATADIR "/referrers.json";
#else
/* make install's default PREFIX (/usr/local). */
const char veil_default_dashboard_dir[] = "/usr/local/share/veil/dashboard";
const char veil_default_tracker_js[] = "";
const char veil_default_referrer_db[] = "/usr/local/share/veil/referrers.json";
#endif

/* version.h - mailferry's version (the Makefile may override it). */
#ifndef MF_VERSION_H
#define MF_VERSION_H
#ifndef MF_VERSION
#define MF_VERSION "0.1.0"
#endif
#endif

/* Developer commands (`ficus token`, `ficus jwks`): see gateway/devtools.c. Both return a process exit code. */
#ifndef ficus__devtools_h
#define ficus__devtools_h

int ficus_devtool_token(int argc, char **argv);
int ficus_devtool_jwks(int argc, char **argv);

#endif

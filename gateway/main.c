/* ficus: the command line (run, `-t` dry run, `-s` control commands, --help, --version). The process itself runs in control.c. */
#include <getopt.h>
#include <openssl/opensslv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "h2o/version.h"
#include "ficus/config.h"
#include "ficus/control_socket.h"
#include "ficus/devtools.h"
#include "ficus/server.h"
#include "ficus/upgrade.h"

static void usage(FILE *fp)
{
    fprintf(fp, "Usage: ficus [-c FILE] [-t] [-S SOCKET] [-x SOCKET]\n"
                "       ficus -s reload|reopen|status|upgrade [-S SOCKET]\n"
                "       ficus token [--key PEM] [--sub S] [--scope 'a b'] [--kid K] [--iss I] [--aud A] [--ttl SECONDS]\n"
                "       ficus jwks [KEY.pem [KID]]\n"
                "\n"
                "  -c, --config FILE   configuration file (default: conf/ficus.yaml)\n"
                "  -t, --test          check the configuration file and exit (0 = valid)\n"
                "  -S, --control-socket SOCKET\n"
                "                      control socket: the server listens on it, -s talks to it\n"
                "                      (-s default: " FICUS_CONTROL_SOCKET_DEFAULT ")\n"
                "  -x, --upgrade-from SOCKET\n"
                "                      binary upgrade: take over the listening sockets of the ficus whose control\n"
                "                      socket is SOCKET, serve, then make it drain and exit (nothing is refused)\n"
                "  -s, --signal CMD    ask the running ficus to reload|reopen|status and wait for the outcome\n"
                "                      (exit 0 done, 1 refused, e.g. a bad file, 2 no ficus answering);\n"
                "                      upgrade: it starts its executable file again with -x (the new binary)\n"
                "  -h, --help          this help\n"
                "  -v, --version       version and library versions\n"
                "\n"
                "Signals: HUP reloads the configuration (a bad file is refused and the running one kept); USR1 reopens\n"
                "the access log file (log rotation); USR2 is ignored;\n"
                "TERM/INT drain in-flight requests (server.drain_timeout) and exit.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"test", no_argument, NULL, 't'},
                                             {"control-socket", required_argument, NULL, 'S'},
                                             {"signal", required_argument, NULL, 's'},
                                             {"upgrade-from", required_argument, NULL, 'x'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'v'},
                                             {NULL}};
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return ficus_devtool_token(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "jwks") == 0)
        return ficus_devtool_jwks(argc - 1, argv + 1);
    ficus_upgrade_set_argv(argc, argv); /* before getopt reorders argv */
    const char *config_path = "conf/ficus.yaml", *control_socket = NULL, *command = NULL, *upgrade_from = NULL;
    int test_only = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:tS:s:x:hv", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 't':
            test_only = 1;
            break;
        case 'S':
            control_socket = optarg;
            break;
        case 's':
            command = optarg;
            break;
        case 'x':
            upgrade_from = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'v':
            printf("ficus %s (h2o %s, %s)\n", FICUS_VERSION, H2O_VERSION, OpenSSL_version(OPENSSL_VERSION));
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "ficus: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (command != NULL)
        return ficus_control_socket_command(control_socket != NULL ? control_socket : FICUS_CONTROL_SOCKET_DEFAULT, command);

    char err[1024];
    ficus_config_t *config = ficus_config_load(config_path, test_only, err, sizeof(err));
    if (config == NULL) {
        fprintf(stderr, "ficus: %s\n", err);
        return 1;
    }
    if (test_only) {
        printf("ficus: %s: configuration OK\n", config_path);
        ficus_config_release(config);
        return 0;
    }
    ficus_server.config_path = config_path;
    /* an upgraded process takes the control socket over too, so that the next upgrade finds it */
    ficus_server.control_socket_path = control_socket != NULL ? control_socket : upgrade_from;
    ficus_server.upgrade_from = upgrade_from;
    return ficus_control_run(&ficus_server, config);
}

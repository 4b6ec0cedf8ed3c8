/* The pod sandbox: holds the pod's namespaces as PID 1, reaps orphans, exits on
 * SIGINT/SIGTERM. Built statically so the image needs nothing else. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
	(void)sig;
	_exit(0);
}

static void on_child(int sig) {
	(void)sig;
	while (waitpid(-1, 0, WNOHANG) > 0) {
	}
}

int main(void) {
	struct sigaction stop = {.sa_handler = on_stop};
	struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
	sigaction(SIGINT, &stop, 0);
	sigaction(SIGTERM, &stop, 0);
	sigaction(SIGCHLD, &child, 0);
	for (;;)
		pause();
}

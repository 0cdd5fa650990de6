/*
 * Key names to terminal bytes, tmux send-keys style, for swerex_send_input()
 * and the CLI's `swerex input --keys` and `attach --detach-key`. The bytes
 * are what xterm sends in its normal (not application) cursor mode, which
 * every program that reads keys understands: the sessions' TERM is xterm.
 */
#include <string.h>

#include "swerex.h"

/* A named key and its bytes. */
struct keys_named {
	const char *name;
	const char *bytes;
};

static const struct keys_named keys_table[] = {
	{ "Escape", "\033" }, { "Esc", "\033" },
	{ "Enter", "\r" }, { "Tab", "\t" }, { "BTab", "\033[Z" },
	{ "Space", " " },
	{ "BSpace", "\177" }, { "Backspace", "\177" },
	{ "Up", "\033[A" }, { "Down", "\033[B" },
	{ "Right", "\033[C" }, { "Left", "\033[D" },
	{ "Home", "\033[H" }, { "End", "\033[F" },
	{ "PageUp", "\033[5~" }, { "PgUp", "\033[5~" }, { "PPage", "\033[5~" },
	{ "PageDown", "\033[6~" }, { "PgDn", "\033[6~" },
	{ "NPage", "\033[6~" },
	{ "Insert", "\033[2~" }, { "IC", "\033[2~" },
	{ "Delete", "\033[3~" }, { "DC", "\033[3~" },
	{ "F1", "\033OP" }, { "F2", "\033OQ" }, { "F3", "\033OR" },
	{ "F4", "\033OS" }, { "F5", "\033[15~" }, { "F6", "\033[17~" },
	{ "F7", "\033[18~" }, { "F8", "\033[19~" }, { "F9", "\033[20~" },
	{ "F10", "\033[21~" }, { "F11", "\033[23~" }, { "F12", "\033[24~" },
};

/* Give the control byte of C-x (or ^x), or -1. */
static int
keys_control(const char *name)
{
	const char *k;
	char c;

	if (strncmp(name, "C-", 2) == 0)
		k = name + 2;
	else if (name[0] == '^' && name[1] != '\0')
		k = name + 1;
	else
		return -1;
	if (strcmp(k, "Space") == 0)
		return 0;
	if (k[0] == '\0' || k[1] != '\0')
		return -1;
	c = k[0];
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 1;
	if (c >= '@' && c <= '_')   /* @ A-Z [ \ ] ^ _ */
		return c - '@';
	if (c == '?')
		return 0x7f;
	return -1;
}

/* Turn a key name into the bytes a terminal sends for it. */
int
swerex_key_bytes(const char *name, char out[SWEREX_KEY_MAX])
{
	size_t i, n;
	int meta = 0, c;

	if (name == NULL)
		return -1;
	if (strncmp(name, "M-", 2) == 0 && name[2] != '\0') {
		meta = 1;
		name += 2;
		out[0] = '\033';
	}
	if ((c = keys_control(name)) >= 0) {
		out[meta] = (char)c;
		return meta + 1;
	}
	for (i = 0; i < sizeof keys_table / sizeof keys_table[0]; i++) {
		if (strcmp(name, keys_table[i].name) != 0)
			continue;
		n = strlen(keys_table[i].bytes);
		memcpy(out + meta, keys_table[i].bytes, n);
		return (int)n + meta;
	}
	/* A single character is itself (M-x: ESC and the character). */
	if (name[0] != '\0' && name[1] == '\0') {
		out[meta] = name[0];
		return meta + 1;
	}
	return -1;
}

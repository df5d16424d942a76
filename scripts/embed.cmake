# cmake -DIN=file -DOUT=file.c -DNAME=symbol -P scripts/embed.cmake: a file compiled in as a byte array
# (the status page, gateway/status_page.html), NUL-terminated, with NAME_len its length.
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}" "/* generated from ${IN} by scripts/embed.cmake */\n#include <stddef.h>\n"
     "extern const char ${NAME}[];\nextern const size_t ${NAME}_len;\n"
     "const char ${NAME}[] = {${bytes} 0};\nconst size_t ${NAME}_len = sizeof(${NAME}) - 1;\n")

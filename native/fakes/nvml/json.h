/* json.h: the small JSON reader the fake NVML uses for its device configuration. */
#ifndef FAKENVML_JSON_H
#define FAKENVML_JSON_H

#include <stddef.h>

enum json_kind { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json {
    enum json_kind kind;
    double number;          /* JSON_NUMBER; JSON_BOOL as 0/1 */
    char *string;           /* JSON_STRING */
    char *key;              /* member name when inside an object */
    struct json *child;     /* first element / member */
    struct json *next;      /* next sibling */
};

/* Parse `text`; NULL on error with a message in `error` (size `error_size`). */
struct json *json_parse(const char *text, char *error, size_t error_size);
void json_free(struct json *value);
/* Member `key` of an object, NULL when absent or not an object. */
const struct json *json_get(const struct json *object, const char *key);
/* Number of elements of an array or members of an object. */
size_t json_length(const struct json *value);
/* Element `index` of an array, NULL when out of range. */
const struct json *json_at(const struct json *array, size_t index);

#endif

/* json.c: a strict recursive-descent JSON reader (RFC 8259 without \u surrogate pairing). */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reader {
    const char *at;
    const char *start;
    char *error;
    size_t error_size;
    int depth;
};

#define MAX_DEPTH 64

static void fail(struct reader *r, const char *what) {
    if (r->error[0] == '\0')
        snprintf(r->error, r->error_size, "%s at offset %ld", what, (long)(r->at - r->start));
}

static void skip_space(struct reader *r) {
    while (*r->at == ' ' || *r->at == '\t' || *r->at == '\n' || *r->at == '\r')
        r->at++;
}

static struct json *node(enum json_kind kind) {
    struct json *value = calloc(1, sizeof *value);
    if (value != NULL)
        value->kind = kind;
    return value;
}

static struct json *parse_value(struct reader *r);

static void put_utf8(char **out, unsigned code) {
    char *o = *out;
    if (code < 0x80) {
        *o++ = (char)code;
    } else if (code < 0x800) {
        *o++ = (char)(0xC0 | (code >> 6));
        *o++ = (char)(0x80 | (code & 0x3F));
    } else {
        *o++ = (char)(0xE0 | (code >> 12));
        *o++ = (char)(0x80 | ((code >> 6) & 0x3F));
        *o++ = (char)(0x80 | (code & 0x3F));
    }
    *out = o;
}

static char *parse_string(struct reader *r) {
    if (*r->at != '"') {
        fail(r, "expected a string");
        return NULL;
    }
    r->at++;
    const char *end = r->at;
    while (*end != '"') {
        if (*end == '\0') {
            fail(r, "unterminated string");
            return NULL;
        }
        end += (*end == '\\' && end[1] != '\0') ? 2 : 1;
    }
    char *text = malloc((size_t)(end - r->at) * 3 + 1);
    if (text == NULL) {
        fail(r, "out of memory");
        return NULL;
    }
    char *out = text;
    while (r->at < end) {
        char c = *r->at++;
        if ((unsigned char)c < 0x20) {
            free(text);
            fail(r, "control character in string");
            return NULL;
        }
        if (c != '\\') {
            *out++ = c;
            continue;
        }
        c = *r->at++;
        switch (c) {
        case '"': case '\\': case '/': *out++ = c; break;
        case 'b': *out++ = '\b'; break;
        case 'f': *out++ = '\f'; break;
        case 'n': *out++ = '\n'; break;
        case 'r': *out++ = '\r'; break;
        case 't': *out++ = '\t'; break;
        case 'u': {
            unsigned code = 0;
            for (int i = 0; i < 4; i++) {
                char h = *r->at++;
                code <<= 4;
                if (h >= '0' && h <= '9') code |= (unsigned)(h - '0');
                else if (h >= 'a' && h <= 'f') code |= (unsigned)(h - 'a' + 10);
                else if (h >= 'A' && h <= 'F') code |= (unsigned)(h - 'A' + 10);
                else {
                    free(text);
                    fail(r, "bad \\u escape");
                    return NULL;
                }
            }
            put_utf8(&out, code);
            break;
        }
        default:
            free(text);
            fail(r, "bad escape");
            return NULL;
        }
    }
    *out = '\0';
    r->at = end + 1;
    return text;
}

static struct json *parse_container(struct reader *r, char close) {
    struct json *value = node(close == '}' ? JSON_OBJECT : JSON_ARRAY);
    if (value == NULL || ++r->depth > MAX_DEPTH) {
        fail(r, "nesting too deep");
        free(value);
        return NULL;
    }
    r->at++;
    skip_space(r);
    struct json **tail = &value->child;
    if (*r->at == close) {
        r->at++;
        r->depth--;
        return value;
    }
    for (;;) {
        char *key = NULL;
        skip_space(r);
        if (close == '}') {
            key = parse_string(r);
            if (key == NULL) break;
            skip_space(r);
            if (*r->at != ':') {
                free(key);
                fail(r, "expected ':'");
                break;
            }
            r->at++;
        }
        struct json *item = parse_value(r);
        if (item == NULL) {
            free(key);
            break;
        }
        item->key = key;
        *tail = item;
        tail = &item->next;
        skip_space(r);
        if (*r->at == ',') {
            r->at++;
            continue;
        }
        if (*r->at == close) {
            r->at++;
            r->depth--;
            return value;
        }
        fail(r, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
        break;
    }
    json_free(value);
    return NULL;
}

static struct json *parse_value(struct reader *r) {
    skip_space(r);
    char c = *r->at;
    if (c == '{' || c == '[')
        return parse_container(r, c == '{' ? '}' : ']');
    if (c == '"') {
        char *text = parse_string(r);
        struct json *value = text ? node(JSON_STRING) : NULL;
        if (value == NULL) {
            free(text);
            return NULL;
        }
        value->string = text;
        return value;
    }
    if (strncmp(r->at, "true", 4) == 0 || strncmp(r->at, "false", 5) == 0) {
        struct json *value = node(JSON_BOOL);
        if (value == NULL) return NULL;
        value->number = c == 't';
        r->at += c == 't' ? 4 : 5;
        return value;
    }
    if (strncmp(r->at, "null", 4) == 0) {
        r->at += 4;
        return node(JSON_NULL);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        char *end;
        double number = strtod(r->at, &end);
        if (end == r->at) {
            fail(r, "bad number");
            return NULL;
        }
        struct json *value = node(JSON_NUMBER);
        if (value == NULL) return NULL;
        value->number = number;
        r->at = end;
        return value;
    }
    fail(r, "unexpected character");
    return NULL;
}

struct json *json_parse(const char *text, char *error, size_t error_size) {
    struct reader r = {text, text, error, error_size, 0};
    error[0] = '\0';
    struct json *value = parse_value(&r);
    if (value == NULL) {
        fail(&r, "invalid JSON");
        return NULL;
    }
    skip_space(&r);
    if (*r.at != '\0') {
        fail(&r, "trailing text after the JSON value");
        json_free(value);
        return NULL;
    }
    return value;
}

void json_free(struct json *value) {
    while (value != NULL) {
        struct json *next = value->next;
        json_free(value->child);
        free(value->string);
        free(value->key);
        free(value);
        value = next;
    }
}

const struct json *json_get(const struct json *object, const char *key) {
    if (object == NULL || object->kind != JSON_OBJECT) return NULL;
    for (const struct json *m = object->child; m != NULL; m = m->next)
        if (strcmp(m->key, key) == 0) return m;
    return NULL;
}

size_t json_length(const struct json *value) {
    size_t n = 0;
    if (value != NULL && (value->kind == JSON_ARRAY || value->kind == JSON_OBJECT))
        for (const struct json *m = value->child; m != NULL; m = m->next) n++;
    return n;
}

const struct json *json_at(const struct json *array, size_t index) {
    if (array == NULL || array->kind != JSON_ARRAY) return NULL;
    const struct json *m = array->child;
    while (m != NULL && index-- > 0) m = m->next;
    return m;
}

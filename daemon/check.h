/* Checks on a request's encoded bytes that decoding cannot make. */
#ifndef SWEREXD_CHECK_H
#define SWEREXD_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

const char *check_nul(const ProtobufCMessageDescriptor *desc, const uint8_t *p,
		      size_t n);

#endif

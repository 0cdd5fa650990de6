/* File requests: placeholder until the file module lands (issue 3). */
#include "conn.h"
#include "file.h"
#include "server.h"

/* Refuse a request the daemon does not serve yet. */
static void
file_unsupported(struct req *r)
{
	conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL, NULL,
	    "file requests are not supported by this swerexd yet");
}

void file_read(struct server *srv, struct req *r, const Swerex__V1__ReadFileRequest *m) { file_unsupported(r); }
void file_write(struct server *srv, struct req *r, const Swerex__V1__WriteFileRequest *m) { file_unsupported(r); }
void file_upload_begin(struct server *srv, struct req *r, const Swerex__V1__UploadBegin *m) { file_unsupported(r); }
void file_upload_data(struct server *srv, struct req *r, const Swerex__V1__UploadData *m) { conn_req_drop(r); }
void file_upload_end(struct server *srv, struct req *r, const Swerex__V1__UploadEnd *m) { file_unsupported(r); }
void file_download(struct server *srv, struct req *r, const Swerex__V1__DownloadRequest *m) { file_unsupported(r); }
void file_free_all(struct server *srv) { }

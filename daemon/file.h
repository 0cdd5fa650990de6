/* File requests: read, atomic write, streamed upload and download. */
#ifndef SWEREXD_FILE_H
#define SWEREXD_FILE_H

#include "swerex.pb-c.h"

struct req;
struct server;

void file_read(struct server *srv, struct req *r,
	       const Swerex__V1__ReadFileRequest *m);
void file_write(struct server *srv, struct req *r,
		const Swerex__V1__WriteFileRequest *m);
void file_upload_begin(struct server *srv, struct req *r,
		       const Swerex__V1__UploadBegin *m);
void file_upload_data(struct server *srv, struct req *r,
		      const Swerex__V1__UploadData *m);
void file_upload_end(struct server *srv, struct req *r,
		     const Swerex__V1__UploadEnd *m);
void file_download(struct server *srv, struct req *r,
		   const Swerex__V1__DownloadRequest *m);
void file_free_all(struct server *srv);

#endif

/*
 * Serves an s3rec-tf export through TensorFlow's C API from several threads
 * at once: one session (TF_LoadSessionFromSavedModel, tag "serve"), shared by
 * every thread (TF_SessionRun is thread-safe), each request one history row
 * of the serving_default signature.
 *
 * usage: serve_load EXPORT_DIR HISTORY_TENSOR ITEM_IDS_TENSOR SCORES_TENSOR
 *                   REQUESTS_FILE THREADS [THREADS ...]
 *
 * The tensor names ("op:index") come from the export's SignatureDef, as for
 * serve_default.c. REQUESTS_FILE holds one request per line: raw item ids,
 * oldest first, separated by commas (an empty line is an empty history); ids
 * hold no comma, tab or newline. Each THREADS argument is one pass over every
 * request with that many client threads; each thread sends its next request
 * as soon as its last one is answered (a closed loop). Pass 1 first to get
 * the answers of the requests made one at a time. The first request is run
 * once, untimed, before the passes (the session's warm-up).
 *
 * Prints, per pass, one line per request:
 *   "THREADS<TAB>REQUEST<TAB>OK<TAB>LATENCY_US<TAB>ITEM,ITEM,...<TAB>SCORE,SCORE,..."
 * (REQUEST 0-based, in the file's order; OK 1 or 0; scores with 9 significant
 * digits, enough to round-trip a float32), then "#<TAB>THREADS<TAB>WALL_US<TAB>STARTED"
 * (STARTED: the threads that could be started).
 * A failed request (a TensorFlow error or an answer of the wrong shape) is
 * printed with OK 0 and empty items and scores; its reason goes to stderr
 * ("serve_load: THREADS threads, request REQUEST: REASON").
 * Exit status: 0 when every pass ran (failed requests included), 1 when the
 * export cannot be loaded, 2 on bad arguments.
 *
 * Compiled by benchmarks/serving_load.py:
 *   gcc -std=c99 -pthread -I<site-packages>/tensorflow/include serve_load.c
 *       -L<site-packages>/tensorflow -l:libtensorflow_cc.so.2
 *       -l:libtensorflow_framework.so.2 -Wl,-rpath,<site-packages>/tensorflow
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensorflow/c/c_api.h"

typedef struct {
  int ok;
  int64_t latency_us;
  char *items;  /* "id,id,..." (malloc'd), NULL when failed */
  char *scores; /* "s,s,..." (malloc'd), NULL when failed */
} Answer;

typedef struct {
  TF_Session *session;
  TF_Output input;
  TF_Output outputs[2];
  char **requests;
  int64_t num_requests;
  Answer *answers;
  int64_t next; /* the next request to send, taken atomically */
  int threads;  /* the pass's client threads, named in error messages */
} Shared;

static int64_t now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* "op:index" -> TF_Output of the loaded graph; .oper is NULL when absent. */
static TF_Output graph_output(TF_Graph *graph, const char *name) {
  TF_Output out = {NULL, 0};
  char op[512];
  const char *colon = strrchr(name, ':');
  size_t len = colon ? (size_t)(colon - name) : strlen(name);
  if (len >= sizeof(op)) return out;
  memcpy(op, name, len);
  op[len] = '\0';
  out.oper = TF_GraphOperationByName(graph, op);
  out.index = colon ? atoi(colon + 1) : 0;
  return out;
}

/* Number of comma-separated ids in a history ("" has none). */
static int64_t count_ids(const char *history) {
  int64_t n = 0;
  if (*history == '\0') return 0;
  for (n = 1; *history; ++history) n += (*history == ',');
  return n;
}

/* A [1, max(1, n)] string tensor of the request's ids, padded with "". */
static TF_Tensor *request_tensor(const char *request) {
  const int64_t n = count_ids(request), width = n > 0 ? n : 1;
  const int64_t dims[2] = {1, width};
  TF_Tensor *tensor = TF_AllocateTensor(TF_STRING, dims, 2, (size_t)width * sizeof(TF_TString));
  TF_TString *cells = (TF_TString *)TF_TensorData(tensor);
  const char *id = request;
  for (int64_t c = 0; c < width; ++c) {
    TF_StringInit(&cells[c]);
    if (c < n) {
      const char *end = strchr(id, ',');
      size_t len = end ? (size_t)(end - id) : strlen(id);
      TF_StringCopy(&cells[c], id, len);
      id = end ? end + 1 : id + len;
    }
  }
  return tensor;
}

static void free_request_tensor(TF_Tensor *tensor) {
  TF_TString *cells = (TF_TString *)TF_TensorData(tensor);
  const int64_t width = TF_Dim(tensor, 1);
  for (int64_t c = 0; c < width; ++c) TF_StringDealloc(&cells[c]);
  TF_DeleteTensor(tensor);
}

/* The answer's items and scores as comma-joined text; 0 when its shape is wrong. */
static int format_answer(TF_Tensor *ids_tensor, TF_Tensor *scores_tensor, Answer *answer) {
  if (TF_TensorType(ids_tensor) != TF_STRING || TF_TensorType(scores_tensor) != TF_FLOAT ||
      TF_NumDims(ids_tensor) != 2 || TF_NumDims(scores_tensor) != 2 ||
      TF_Dim(ids_tensor, 0) != 1 || TF_Dim(scores_tensor, 0) != 1 ||
      TF_Dim(ids_tensor, 1) != TF_Dim(scores_tensor, 1))
    return 0;
  const int64_t k = TF_Dim(ids_tensor, 1);
  const TF_TString *ids = (const TF_TString *)TF_TensorData(ids_tensor);
  const float *scores = (const float *)TF_TensorData(scores_tensor);
  size_t size = 1;
  for (int64_t j = 0; j < k; ++j) size += TF_StringGetSize(&ids[j]) + 1;
  answer->items = malloc(size);
  answer->scores = malloc((size_t)k * 24 + 1);
  char *p = answer->items, *q = answer->scores;
  *p = *q = '\0';
  for (int64_t j = 0; j < k; ++j) {
    size_t len = TF_StringGetSize(&ids[j]);
    if (j) *p++ = ',';
    memcpy(p, TF_StringGetDataPointer(&ids[j]), len);
    p += len;
    q += sprintf(q, j ? ",%.9g" : "%.9g", (double)scores[j]);
  }
  *p = '\0';
  return 1;
}

static void *client(void *arg) {
  Shared *shared = (Shared *)arg;
  TF_Status *status = TF_NewStatus();
  for (;;) {
    const int64_t r = __atomic_fetch_add(&shared->next, 1, __ATOMIC_SEQ_CST);
    if (r >= shared->num_requests) break;
    Answer *answer = &shared->answers[r];
    TF_Tensor *history = request_tensor(shared->requests[r]);
    TF_Tensor *values[2] = {NULL, NULL};
    const int64_t start = now_us();
    TF_SessionRun(shared->session, NULL, &shared->input, &history, 1, shared->outputs, values,
                  2, NULL, 0, NULL, status);
    answer->latency_us = now_us() - start;
    free_request_tensor(history);
    if (TF_GetCode(status) != TF_OK) {
      fprintf(stderr, "serve_load: %d threads, request %lld: %s\n", shared->threads,
              (long long)r, TF_Message(status));
    } else if (!format_answer(values[0], values[1], answer)) {
      fprintf(stderr, "serve_load: %d threads, request %lld: expected string item ids and "
                      "float scores [1, k]\n", shared->threads, (long long)r);
    } else {
      answer->ok = 1;
    }
    for (int i = 0; i < 2; ++i)
      if (values[i]) TF_DeleteTensor(values[i]);
  }
  TF_DeleteStatus(status);
  return NULL;
}

/* The file's lines (without "\n" or "\r"); NULL when unreadable. */
static char **read_requests(const char *path, int64_t *count) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  int64_t capacity = 1024, n = 0;
  char **lines = malloc((size_t)capacity * sizeof(char *));
  char *line = NULL;
  size_t size = 0;
  ssize_t len;
  while ((len = getline(&line, &size, f)) >= 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    if (n == capacity) lines = realloc(lines, (size_t)(capacity *= 2) * sizeof(char *));
    lines[n++] = strdup(line);
  }
  free(line);
  fclose(f);
  *count = n;
  return lines;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: %s EXPORT_DIR HISTORY_TENSOR ITEM_IDS_TENSOR SCORES_TENSOR "
                    "REQUESTS_FILE THREADS [THREADS ...]\n", argv[0]);
    return 2;
  }
  for (int a = 6; a < argc; ++a) {
    if (atoi(argv[a]) < 1) {
      fprintf(stderr, "serve_load: THREADS %s: expected a whole number >= 1\n", argv[a]);
      return 2;
    }
  }
  Shared shared;
  memset(&shared, 0, sizeof(shared));
  shared.requests = read_requests(argv[5], &shared.num_requests);
  if (!shared.requests) {
    fprintf(stderr, "serve_load: cannot read %s\n", argv[5]);
    return 2;
  }

  TF_Status *status = TF_NewStatus();
  TF_SessionOptions *options = TF_NewSessionOptions();
  TF_Graph *graph = TF_NewGraph();
  const char *tags[] = {"serve"};
  shared.session = TF_LoadSessionFromSavedModel(options, NULL, argv[1], tags, 1, graph, NULL,
                                                status);
  TF_DeleteSessionOptions(options);
  if (TF_GetCode(status) != TF_OK) {
    fprintf(stderr, "serve_load: loading the SavedModel: %s\n", TF_Message(status));
    return 1;
  }
  shared.input = graph_output(graph, argv[2]);
  shared.outputs[0] = graph_output(graph, argv[3]);
  shared.outputs[1] = graph_output(graph, argv[4]);
  for (int i = 0; i < 3; ++i) {
    TF_Output o = i == 0 ? shared.input : shared.outputs[i - 1];
    if (o.oper == NULL) {
      fprintf(stderr, "serve_load: no tensor %s in the graph\n", argv[2 + i]);
      return 2;
    }
  }

  shared.answers = calloc((size_t)(shared.num_requests ? shared.num_requests : 1),
                          sizeof(Answer));
  if (shared.num_requests > 0) { /* warm-up: the first request, once, untimed */
    const int64_t all = shared.num_requests;
    shared.num_requests = 1;
    shared.threads = 1;
    client(&shared);
    free(shared.answers[0].items);
    free(shared.answers[0].scores);
    shared.num_requests = all;
  }
  for (int a = 6; a < argc; ++a) {
    const int threads = atoi(argv[a]);
    pthread_t *ids = malloc((size_t)threads * sizeof(pthread_t));
    memset(shared.answers, 0, (size_t)shared.num_requests * sizeof(Answer));
    shared.next = 0;
    shared.threads = threads;
    const int64_t start = now_us();
    int started = 0;
    for (; started < threads; ++started)
      if (pthread_create(&ids[started], NULL, client, &shared) != 0) break;
    if (started == 0) {
      fprintf(stderr, "serve_load: cannot start a thread\n");
      return 1;
    }
    for (int t = 0; t < started; ++t) pthread_join(ids[t], NULL);
    const int64_t wall = now_us() - start;
    free(ids);
    if (started < threads)
      fprintf(stderr, "serve_load: started %d of %d threads\n", started, threads);
    for (int64_t r = 0; r < shared.num_requests; ++r) {
      Answer *answer = &shared.answers[r];
      printf("%d\t%lld\t%d\t%lld\t%s\t%s\n", threads, (long long)r, answer->ok,
             (long long)answer->latency_us, answer->ok ? answer->items : "",
             answer->ok ? answer->scores : "");
      free(answer->items);
      free(answer->scores);
    }
    printf("#\t%d\t%lld\t%d\n", threads, (long long)wall, started);
    fflush(stdout);
  }

  TF_CloseSession(shared.session, status);
  TF_DeleteSession(shared.session, status);
  TF_DeleteGraph(graph);
  TF_DeleteStatus(status);
  for (int64_t r = 0; r < shared.num_requests; ++r) free(shared.requests[r]);
  free(shared.requests);
  free(shared.answers);
  return 0;
}

/*
 * Serves an s3rec-tf export through TensorFlow's C API, the way TF Serving
 * loads it: TF_LoadSessionFromSavedModel with the tag "serve", then one run
 * of the serving_default signature on raw string item ids.
 *
 * usage: serve_default EXPORT_DIR HISTORY_TENSOR ITEM_IDS_TENSOR SCORES_TENSOR
 *                      HISTORY [HISTORY ...]
 *
 * The tensor names ("op:index") come from the export's SignatureDef
 * (`saved_model_cli show --dir EXPORT_DIR --tag_set serve --signature_def
 * serving_default`); outputs are fetched by name, so other outputs of the
 * signature do not matter. Each HISTORY is one request row: raw item ids,
 * oldest first, separated by commas (an empty argument is an empty history).
 * Rows are right-padded with "" to the longest one, as the signature expects.
 *
 * Prints one line per returned item: "ROW<TAB>ITEM_ID<TAB>SCORE", the score
 * with 9 significant digits (enough to round-trip a float32).
 * Exit status: 0 on success, 1 on a TensorFlow error, 2 on bad arguments.
 *
 * Compiled by tests/test_serving_c_api.py:
 *   gcc -I<site-packages>/tensorflow/include serve_default.c
 *       -L<site-packages>/tensorflow -l:libtensorflow_cc.so.2
 *       -l:libtensorflow_framework.so.2 -Wl,-rpath,<site-packages>/tensorflow
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorflow/c/c_api.h"

static int check(TF_Status *status, const char *what) {
  if (TF_GetCode(status) != TF_OK) {
    fprintf(stderr, "serve_default: %s: %s\n", what, TF_Message(status));
    return 0;
  }
  return 1;
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

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s EXPORT_DIR HISTORY_TENSOR ITEM_IDS_TENSOR SCORES_TENSOR "
                    "HISTORY [HISTORY ...]\n", argv[0]);
    return 2;
  }
  const char *export_dir = argv[1];
  const int64_t batch = argc - 5;
  int64_t width = 1;
  for (int r = 0; r < batch; ++r) {
    int64_t n = count_ids(argv[5 + r]);
    if (n > width) width = n;
  }

  TF_Status *status = TF_NewStatus();
  TF_SessionOptions *options = TF_NewSessionOptions();
  TF_Graph *graph = TF_NewGraph();
  const char *tags[] = {"serve"};
  TF_Session *session = TF_LoadSessionFromSavedModel(options, NULL, export_dir, tags, 1,
                                                     graph, NULL, status);
  TF_DeleteSessionOptions(options);
  if (!check(status, "loading the SavedModel")) return 1;

  TF_Output input = graph_output(graph, argv[2]);
  TF_Output outputs[2] = {graph_output(graph, argv[3]), graph_output(graph, argv[4])};
  for (int i = 0; i < 3; ++i) {
    TF_Output o = i == 0 ? input : outputs[i - 1];
    if (o.oper == NULL) {
      fprintf(stderr, "serve_default: no tensor %s in the graph\n", argv[2 + i]);
      return 2;
    }
  }

  /* The [batch, width] string tensor of raw ids, padded with "". */
  const int64_t dims[2] = {batch, width};
  TF_Tensor *history = TF_AllocateTensor(TF_STRING, dims, 2,
                                         (size_t)(batch * width) * sizeof(TF_TString));
  TF_TString *cells = (TF_TString *)TF_TensorData(history);
  for (int64_t r = 0; r < batch; ++r) {
    const char *id = argv[5 + r];
    for (int64_t c = 0; c < width; ++c) {
      TF_TString *cell = &cells[r * width + c];
      TF_StringInit(cell);
      if (c < count_ids(argv[5 + r])) {
        const char *end = strchr(id, ',');
        size_t len = end ? (size_t)(end - id) : strlen(id);
        TF_StringCopy(cell, id, len);
        id = end ? end + 1 : id + len;
      }
    }
  }

  TF_Tensor *values[2] = {NULL, NULL};
  TF_SessionRun(session, NULL, &input, &history, 1, outputs, values, 2, NULL, 0, NULL, status);
  for (int64_t i = 0; i < batch * width; ++i) TF_StringDealloc(&cells[i]);
  TF_DeleteTensor(history);
  if (!check(status, "running serving_default")) return 1;

  if (TF_TensorType(values[0]) != TF_STRING || TF_TensorType(values[1]) != TF_FLOAT ||
      TF_NumDims(values[0]) != 2 || TF_NumDims(values[1]) != 2 ||
      TF_Dim(values[0], 1) != TF_Dim(values[1], 1)) {
    fprintf(stderr, "serve_default: expected string item ids and float scores [batch, k]\n");
    return 1;
  }
  const int64_t rows = TF_Dim(values[0], 0), k = TF_Dim(values[0], 1);
  const TF_TString *ids = (const TF_TString *)TF_TensorData(values[0]);
  const float *scores = (const float *)TF_TensorData(values[1]);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < k; ++j) {
      const TF_TString *id = &ids[r * k + j];
      printf("%lld\t%.*s\t%.9g\n", (long long)r, (int)TF_StringGetSize(id),
             TF_StringGetDataPointer(id), (double)scores[r * k + j]);
    }
  }
  TF_DeleteTensor(values[0]);
  TF_DeleteTensor(values[1]);
  TF_CloseSession(session, status);
  TF_DeleteSession(session, status);
  TF_DeleteGraph(graph);
  TF_DeleteStatus(status);
  return 0;
}

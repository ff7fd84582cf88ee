/* mmpublish: decisions as JSON lines to a file or an MQTT broker
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-mmpublish
 * @title: mmpublish
 *
 * Placed after mmdecode, passes every buffer through unchanged and
 * publishes one JSON object per decision (per buffer carrying mmdecode's
 * MmClassificationStructureMeta):
 *
 * - as JSON lines to #GstMmPublish:location (a file, or `-` for stdout,
 *   the default), or
 * - to an MQTT broker through libmosquitto when #GstMmPublish:host is set,
 *   on #GstMmPublish:topic (`{stream-id}` is replaced by
 *   #GstMmPublish:stream-id), with #GstMmPublish:qos, retain, client id,
 *   user name and password, a TLS CA file and keep-alive.
 *
 * The JSON object holds every field of the `mm-classification` message
 * (README: pts, duration, running-time, stream-time, labels, scores, label,
 * score, text, kind, outputs, names, present, missing, inputs,
 * input-present, input-pts, input-duration, input-age; times in
 * nanoseconds, null when unknown; doubles with full precision) plus
 * `stream-id` (the property), `uri` (the #GstMmPublish:uri property, or the
 * URI of the pipeline's first source that has one, or null) and `wallclock`
 * (UTC, ISO 8601 with microseconds, when the decision was published).
 *
 * Publishing never blocks the streaming thread on the network: decisions go
 * into a bounded in-memory queue (#GstMmPublish:max-queue) that a publisher
 * thread drains.  While the broker cannot be reached the thread reconnects
 * with a backoff from 0.5 s doubling to 10 s, the queue keeps the newest
 * decisions, and each one it has to drop is counted
 * (#GstMmPublish:dropped) and logged; the first drop and the first failed
 * connection are also posted as WARNING messages.  At QoS 1 and 2
 * libmosquitto resends messages the broker had not acknowledged when the
 * connection came back.  On EOS the element waits up to
 * #GstMmPublish:flush-timeout for the queue to drain before passing EOS
 * on; what is still queued then is dropped with a warning, so a broker that
 * is away cannot hang the pipeline.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=cues.srt ! subparse ! textenc model=tiny.safetensors ! f.sink_0 \
 *     mmfuse name=f model=tiny.safetensors ! mmdecode model=tiny.safetensors ! \
 *     mmpublish location=decisions.jsonl stream-id=cam1 ! fakesink
 * ]|
 * |[
 * ... ! mmdecode model=scenes.safetensors ! \
 *     mmpublish host=127.0.0.1 port=1883 topic=mm/{stream-id}/decisions qos=1 stream-id=cam1 ! fakesink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-glib/json-glib.h>
#include <mosquitto.h>

#include "gstmmmeta.h"
#include "gstmmpublish.h"

GST_DEBUG_CATEGORY_STATIC (gst_mm_publish_debug);
#define GST_CAT_DEFAULT gst_mm_publish_debug

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_HOST,
  PROP_PORT,
  PROP_TOPIC,
  PROP_QOS,
  PROP_RETAIN,
  PROP_CLIENT_ID,
  PROP_USERNAME,
  PROP_PASSWORD,
  PROP_CA_FILE,
  PROP_KEEP_ALIVE,
  PROP_STREAM_ID,
  PROP_URI,
  PROP_MAX_QUEUE,
  PROP_FLUSH_TIMEOUT,
  PROP_PUBLISHED,
  PROP_DROPPED,
};

#define DEFAULT_LOCATION "-"
#define DEFAULT_PORT 1883
#define DEFAULT_TOPIC "mm/{stream-id}"
#define DEFAULT_QOS 1
#define DEFAULT_KEEP_ALIVE 60
#define DEFAULT_STREAM_ID "mm"
#define DEFAULT_MAX_QUEUE 1000
#define DEFAULT_FLUSH_TIMEOUT (5 * GST_SECOND)
#define BACKOFF_MIN_US (500 * G_TIME_SPAN_MILLISECOND)
#define BACKOFF_MAX_US (10 * G_TIME_SPAN_SECOND)

struct _GstMmPublish
{
  GstBaseTransform parent;

  /* properties: object lock */
  gchar *location, *host, *topic, *client_id, *username, *password, *ca_file;
  gchar *stream_id, *uri;
  guint port, qos, keep_alive, max_queue;
  gboolean retain;
  guint64 flush_timeout;

  /* set in start(), read by both threads until stop() */
  gboolean mqtt;
  gchar *topic_resolved;
  gchar *uri_resolved;
  FILE *file;
  gboolean own_file;

  /* publisher state: lock */
  GMutex lock;
  GCond cond;
  GQueue queue; /* gchar * JSON texts, oldest first */
  gboolean stopping;
  gboolean connected;
  guint inflight;       /* handed to libmosquitto, not acknowledged */
  guint64 published;    /* acknowledged (QoS 0: written) or written to the file */
  guint64 dropped;      /* queue overflow or left at EOS/stop */
  gboolean warned_drop; /* a WARNING message was posted for drops */
  GThread *thread;
  struct mosquitto *mosq; /* publisher thread only (and callbacks in it) */
};

#define gst_mm_publish_parent_class parent_class
G_DEFINE_TYPE (GstMmPublish, gst_mm_publish, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (mmpublish, "mmpublish", GST_RANK_NONE, GST_TYPE_MM_PUBLISH);

static void gst_mm_publish_finalize (GObject *object);
static void gst_mm_publish_set_property (
    GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec);
static void
gst_mm_publish_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec);
static gboolean gst_mm_publish_start (GstBaseTransform *trans);
static gboolean gst_mm_publish_stop (GstBaseTransform *trans);
static gboolean gst_mm_publish_sink_event (GstBaseTransform *trans, GstEvent *event);
static GstFlowReturn gst_mm_publish_transform_ip (GstBaseTransform *trans, GstBuffer *buf);

static void
install_string (
    GObjectClass *klass, guint id, const gchar *name, const gchar *blurb, const gchar *def)
{
  g_object_class_install_property (klass, id,
      g_param_spec_string (name, name, blurb, def,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
}

static void
gst_mm_publish_class_init (GstMmPublishClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  gobject_class->finalize = gst_mm_publish_finalize;
  gobject_class->set_property = gst_mm_publish_set_property;
  gobject_class->get_property = gst_mm_publish_get_property;

  install_string (gobject_class, PROP_LOCATION, "location",
      "File the JSON lines are appended to, \"-\" for stdout (when host is not set)",
      DEFAULT_LOCATION);
  install_string (gobject_class, PROP_HOST, "host",
      "MQTT broker host name or address; setting it publishes to MQTT instead of location", NULL);
  g_object_class_install_property (gobject_class, PROP_PORT,
      g_param_spec_uint ("port", "Port", "MQTT broker port", 1, 65535, DEFAULT_PORT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  install_string (gobject_class, PROP_TOPIC, "topic",
      "MQTT topic; {stream-id} is replaced by the stream-id property", DEFAULT_TOPIC);
  g_object_class_install_property (gobject_class, PROP_QOS,
      g_param_spec_uint ("qos", "QoS", "MQTT quality of service (0, 1 or 2)", 0, 2, DEFAULT_QOS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_RETAIN,
      g_param_spec_boolean ("retain", "Retain", "Ask the broker to retain the last decision", FALSE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  install_string (gobject_class, PROP_CLIENT_ID, "client-id",
      "MQTT client id (NULL: one chosen by libmosquitto)", NULL);
  install_string (gobject_class, PROP_USERNAME, "username", "MQTT user name", NULL);
  install_string (gobject_class, PROP_PASSWORD, "password", "MQTT password", NULL);
  install_string (gobject_class, PROP_CA_FILE, "ca-file",
      "PEM file of the CA certificates that sign the broker's; setting it enables TLS", NULL);
  g_object_class_install_property (gobject_class, PROP_KEEP_ALIVE,
      g_param_spec_uint ("keep-alive", "Keep alive", "MQTT keep-alive interval (seconds)", 5, 3600,
          DEFAULT_KEEP_ALIVE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  install_string (gobject_class, PROP_STREAM_ID, "stream-id",
      "Identifies this stream in every JSON object and in the topic", DEFAULT_STREAM_ID);
  install_string (gobject_class, PROP_URI, "uri",
      "Source URI written in every JSON object (NULL: the URI of the pipeline's first source "
      "that has one)",
      NULL);
  g_object_class_install_property (gobject_class, PROP_MAX_QUEUE,
      g_param_spec_uint ("max-queue", "Max queue",
          "Decisions kept in memory while they cannot be published; beyond it the oldest "
          "is dropped and counted",
          1, G_MAXINT, DEFAULT_MAX_QUEUE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_FLUSH_TIMEOUT,
      g_param_spec_uint64 ("flush-timeout", "Flush timeout",
          "How long EOS waits for queued decisions to be published (ns)", 0, G_MAXUINT64,
          DEFAULT_FLUSH_TIMEOUT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_PUBLISHED,
      g_param_spec_uint64 ("published", "Published",
          "Decisions written (file) or acknowledged by the broker (QoS 0: sent)", 0, G_MAXUINT64, 0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_DROPPED,
      g_param_spec_uint64 ("dropped", "Dropped",
          "Decisions dropped: queue overflow, or still queued when EOS's flush timed out", 0,
          G_MAXUINT64, 0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "Multimodal decision publisher",
      "Filter/Analyzer/Network",
      "Publishes mmdecode's decisions as JSON lines to a file or to an MQTT broker",
      "mm-gst developers");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_mm_publish_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_mm_publish_stop);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_mm_publish_sink_event);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_mm_publish_transform_ip);
  trans_class->passthrough_on_same_caps = TRUE;

  GST_DEBUG_CATEGORY_INIT (gst_mm_publish_debug, "mmpublish", 0, "multimodal decision publisher");
}

static void
gst_mm_publish_init (GstMmPublish *self)
{
  self->location = g_strdup (DEFAULT_LOCATION);
  self->topic = g_strdup (DEFAULT_TOPIC);
  self->stream_id = g_strdup (DEFAULT_STREAM_ID);
  self->port = DEFAULT_PORT;
  self->qos = DEFAULT_QOS;
  self->keep_alive = DEFAULT_KEEP_ALIVE;
  self->max_queue = DEFAULT_MAX_QUEUE;
  self->flush_timeout = DEFAULT_FLUSH_TIMEOUT;
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  g_queue_init (&self->queue);
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}

static void
gst_mm_publish_finalize (GObject *object)
{
  GstMmPublish *self = GST_MM_PUBLISH (object);

  g_free (self->location);
  g_free (self->host);
  g_free (self->topic);
  g_free (self->client_id);
  g_free (self->username);
  g_free (self->password);
  g_free (self->ca_file);
  g_free (self->stream_id);
  g_free (self->uri);
  g_queue_clear_full (&self->queue, g_free);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_mm_publish_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstMmPublish *self = GST_MM_PUBLISH (object);
  gchar **field = NULL;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      field = &self->location;
      break;
    case PROP_HOST:
      field = &self->host;
      break;
    case PROP_TOPIC:
      field = &self->topic;
      break;
    case PROP_CLIENT_ID:
      field = &self->client_id;
      break;
    case PROP_USERNAME:
      field = &self->username;
      break;
    case PROP_PASSWORD:
      field = &self->password;
      break;
    case PROP_CA_FILE:
      field = &self->ca_file;
      break;
    case PROP_STREAM_ID:
      field = &self->stream_id;
      break;
    case PROP_URI:
      field = &self->uri;
      break;
    case PROP_PORT:
      self->port = g_value_get_uint (value);
      break;
    case PROP_QOS:
      self->qos = g_value_get_uint (value);
      break;
    case PROP_RETAIN:
      self->retain = g_value_get_boolean (value);
      break;
    case PROP_KEEP_ALIVE:
      self->keep_alive = g_value_get_uint (value);
      break;
    case PROP_MAX_QUEUE:
      self->max_queue = g_value_get_uint (value);
      break;
    case PROP_FLUSH_TIMEOUT:
      self->flush_timeout = g_value_get_uint64 (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  if (field) {
    g_free (*field);
    *field = g_value_dup_string (value);
    if (*field && **field == '\0')
      g_clear_pointer (field, g_free);
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_mm_publish_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstMmPublish *self = GST_MM_PUBLISH (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_HOST:
      g_value_set_string (value, self->host);
      break;
    case PROP_TOPIC:
      g_value_set_string (value, self->topic);
      break;
    case PROP_CLIENT_ID:
      g_value_set_string (value, self->client_id);
      break;
    case PROP_USERNAME:
      g_value_set_string (value, self->username);
      break;
    case PROP_PASSWORD:
      g_value_set_string (value, self->password);
      break;
    case PROP_CA_FILE:
      g_value_set_string (value, self->ca_file);
      break;
    case PROP_STREAM_ID:
      g_value_set_string (value, self->stream_id);
      break;
    case PROP_URI:
      g_value_set_string (value, self->uri);
      break;
    case PROP_PORT:
      g_value_set_uint (value, self->port);
      break;
    case PROP_QOS:
      g_value_set_uint (value, self->qos);
      break;
    case PROP_RETAIN:
      g_value_set_boolean (value, self->retain);
      break;
    case PROP_KEEP_ALIVE:
      g_value_set_uint (value, self->keep_alive);
      break;
    case PROP_MAX_QUEUE:
      g_value_set_uint (value, self->max_queue);
      break;
    case PROP_FLUSH_TIMEOUT:
      g_value_set_uint64 (value, self->flush_timeout);
      break;
    case PROP_PUBLISHED:
      g_mutex_lock (&self->lock);
      g_value_set_uint64 (value, self->published);
      g_mutex_unlock (&self->lock);
      break;
    case PROP_DROPPED:
      g_mutex_lock (&self->lock);
      g_value_set_uint64 (value, self->dropped);
      g_mutex_unlock (&self->lock);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* ---- JSON ---- */

static JsonNode *
value_to_json (const GValue *v)
{
  JsonNode *node = json_node_new (JSON_NODE_VALUE);
  GType t = G_VALUE_TYPE (v);

  if (t == G_TYPE_STRING) {
    json_node_set_string (node, g_value_get_string (v) ? g_value_get_string (v) : "");
  } else if (t == G_TYPE_DOUBLE) {
    json_node_set_double (node, g_value_get_double (v));
  } else if (t == G_TYPE_BOOLEAN) {
    json_node_set_boolean (node, g_value_get_boolean (v));
  } else if (t == G_TYPE_UINT64) {
    guint64 u = g_value_get_uint64 (v);

    if (u == G_MAXUINT64 || u > (guint64)G_MAXINT64)
      json_node_init_null (node); /* GST_CLOCK_TIME_NONE */
    else
      json_node_set_int (node, (gint64)u);
  } else if (t == G_TYPE_INT) {
    json_node_set_int (node, g_value_get_int (v));
  } else if (GST_VALUE_HOLDS_ARRAY (v)) {
    JsonArray *arr = json_array_new ();
    guint i;

    for (i = 0; i < gst_value_array_get_size (v); i++)
      json_array_add_element (arr, value_to_json (gst_value_array_get_value (v, i)));
    json_node_free (node);
    node = json_node_new (JSON_NODE_ARRAY);
    json_node_take_array (node, arr);
  } else {
    gchar *s = gst_value_serialize (v);

    json_node_set_string (node, s ? s : "");
    g_free (s);
  }
  return node;
}

static gboolean
add_field (GQuark field, const GValue *value, gpointer user_data)
{
  json_object_set_member (
      (JsonObject *)user_data, g_quark_to_string (field), value_to_json (value));
  return TRUE;
}

static gchar *
decision_json (GstMmPublish *self, const GstStructure *s)
{
  JsonObject *obj = json_object_new ();
  JsonNode *root = json_node_new (JSON_NODE_OBJECT);
  GDateTime *now = g_date_time_new_now_utc ();
  gchar *wall = g_date_time_format (now, "%Y-%m-%dT%H:%M:%S.%fZ");
  gchar *text;

  GST_OBJECT_LOCK (self);
  json_object_set_string_member (obj, "stream-id", self->stream_id ? self->stream_id : "");
  GST_OBJECT_UNLOCK (self);
  if (self->uri_resolved && *self->uri_resolved)
    json_object_set_string_member (obj, "uri", self->uri_resolved);
  else
    json_object_set_null_member (obj, "uri");
  json_object_set_string_member (obj, "wallclock", wall);
  gst_structure_foreach (s, add_field, obj);
  json_node_take_object (root, obj);
  text = json_to_string (root, FALSE);
  json_node_free (root);
  g_free (wall);
  g_date_time_unref (now);
  return text;
}

/* The URI of the first element of the top-level bin that is a URI source. */
static gchar *
find_source_uri (GstMmPublish *self)
{
  GstObject *top = GST_OBJECT (gst_object_ref (self)), *parent;
  GstIterator *it;
  GValue item = G_VALUE_INIT;
  gchar *uri = NULL;

  while ((parent = gst_object_get_parent (top)) != NULL) {
    gst_object_unref (top);
    top = parent;
  }
  if (!GST_IS_BIN (top)) {
    gst_object_unref (top);
    return NULL;
  }
  it = gst_bin_iterate_recurse (GST_BIN (top));
  while (uri == NULL && gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&item);

    if (GST_IS_URI_HANDLER (e) && gst_uri_handler_get_uri_type (GST_URI_HANDLER (e)) == GST_URI_SRC)
      uri = gst_uri_handler_get_uri (GST_URI_HANDLER (e));
    g_value_reset (&item);
  }
  g_value_unset (&item);
  gst_iterator_free (it);
  gst_object_unref (top);
  return uri;
}

/* ---- the publisher thread ---- */

static void
on_connect (struct mosquitto *mosq, void *data, int rc)
{
  GstMmPublish *self = data;

  g_mutex_lock (&self->lock);
  self->connected = rc == 0;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (rc == 0)
    GST_INFO_OBJECT (self, "connected to the broker");
  else
    GST_WARNING_OBJECT (self, "broker refused the connection: %s", mosquitto_connack_string (rc));
}

static void
on_disconnect (struct mosquitto *mosq, void *data, int rc)
{
  GstMmPublish *self = data;

  g_mutex_lock (&self->lock);
  self->connected = FALSE;
  g_mutex_unlock (&self->lock);
  GST_INFO_OBJECT (self, "disconnected (%d)", rc);
}

static void
on_publish (struct mosquitto *mosq, void *data, int mid)
{
  GstMmPublish *self = data;

  g_mutex_lock (&self->lock);
  if (self->inflight > 0)
    self->inflight--;
  self->published++;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

/* Sleeps @us or until stopping; lock held. */
static void
wait_locked (GstMmPublish *self, gint64 us)
{
  gint64 end = g_get_monotonic_time () + us;

  while (!self->stopping && g_get_monotonic_time () < end)
    g_cond_wait_until (&self->cond, &self->lock, end);
}

static gpointer
file_thread (gpointer data)
{
  GstMmPublish *self = data;

  g_mutex_lock (&self->lock);
  for (;;) {
    gchar *text;

    while (g_queue_is_empty (&self->queue) && !self->stopping)
      g_cond_wait (&self->cond, &self->lock);
    if (g_queue_is_empty (&self->queue))
      break;
    text = g_queue_pop_head (&self->queue);
    self->inflight = 1;
    g_mutex_unlock (&self->lock);
    fputs (text, self->file);
    fputc ('\n', self->file);
    fflush (self->file);
    g_free (text);
    g_mutex_lock (&self->lock);
    self->inflight = 0;
    self->published++;
    g_cond_broadcast (&self->cond);
  }
  g_mutex_unlock (&self->lock);
  return NULL;
}

static gpointer
mqtt_thread (gpointer data)
{
  GstMmPublish *self = data;
  gchar *host;
  guint port, keep_alive, qos;
  gboolean retain, ever_connected = FALSE, warned = FALSE, tried = FALSE;
  gint64 backoff = BACKOFF_MIN_US;

  GST_OBJECT_LOCK (self);
  host = g_strdup (self->host);
  port = self->port;
  keep_alive = self->keep_alive;
  qos = self->qos;
  retain = self->retain;
  GST_OBJECT_UNLOCK (self);

  g_mutex_lock (&self->lock);
  while (!self->stopping) {
    gboolean connected = self->connected;
    int rc;

    if (!connected && !(tried && mosquitto_socket (self->mosq) >= 0)) {
      g_mutex_unlock (&self->lock);
      rc = tried ? mosquitto_reconnect (self->mosq)
                 : mosquitto_connect (self->mosq, host, port, keep_alive);
      tried = TRUE;
      g_mutex_lock (&self->lock);
      if (rc != MOSQ_ERR_SUCCESS) {
        const gchar *why = rc == MOSQ_ERR_ERRNO ? g_strerror (errno) : mosquitto_strerror (rc);

        GST_WARNING_OBJECT (self,
            "cannot connect to MQTT broker %s:%u: %s (retry in %" G_GINT64_FORMAT " ms)", host,
            port, why, backoff / 1000);
        if (!warned) {
          warned = TRUE;
          g_mutex_unlock (&self->lock);
          GST_ELEMENT_WARNING (self, RESOURCE, OPEN_WRITE,
              ("Cannot connect to the MQTT broker %s:%u: %s; decisions are queued and the "
               "connection retried",
                  host, port, why),
              (NULL));
          g_mutex_lock (&self->lock);
        }
        wait_locked (self, backoff);
        backoff = MIN (backoff * 2, BACKOFF_MAX_US);
        continue;
      }
    }
    /* hand what is queued to libmosquitto once the broker said yes */
    while (self->connected && !g_queue_is_empty (&self->queue) && self->inflight < 100) {
      gchar *text = g_queue_pop_head (&self->queue);
      int mid;

      rc = mosquitto_publish (
          self->mosq, &mid, self->topic_resolved, (int)strlen (text), text, (int)qos, retain);
      if (rc != MOSQ_ERR_SUCCESS) {
        g_queue_push_head (&self->queue, text);
        break;
      }
      g_free (text);
      self->inflight++;
    }
    if (self->connected) {
      ever_connected = TRUE;
      backoff = BACKOFF_MIN_US;
    }
    g_mutex_unlock (&self->lock);
    rc = mosquitto_loop (self->mosq, 50, 1);
    g_mutex_lock (&self->lock);
    if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
      GST_INFO_OBJECT (self, "connection lost: %s", mosquitto_strerror (rc));
      self->connected = FALSE;
      g_mutex_unlock (&self->lock);
      mosquitto_disconnect (self->mosq);
      g_mutex_lock (&self->lock);
      wait_locked (self, backoff);
      backoff = MIN (backoff * 2, BACKOFF_MAX_US);
    } else if (rc == MOSQ_ERR_NO_CONN) {
      self->connected = FALSE;
      wait_locked (self, backoff);
      backoff = MIN (backoff * 2, BACKOFF_MAX_US);
    }
  }
  g_mutex_unlock (&self->lock);
  if (ever_connected) {
    mosquitto_disconnect (self->mosq);
    mosquitto_loop (self->mosq, 50, 1);
  }
  g_free (host);
  return NULL;
}

/* ---- GstBaseTransform ---- */

static gboolean
gst_mm_publish_start (GstBaseTransform *trans)
{
  GstMmPublish *self = GST_MM_PUBLISH (trans);
  gchar *location, *topic, *stream_id, *client_id, *user, *pass, *ca;
  GError *err = NULL;

  GST_OBJECT_LOCK (self);
  self->mqtt = self->host != NULL;
  location = g_strdup (self->location ? self->location : DEFAULT_LOCATION);
  topic = g_strdup (self->topic ? self->topic : DEFAULT_TOPIC);
  stream_id = g_strdup (self->stream_id ? self->stream_id : "");
  client_id = g_strdup (self->client_id);
  user = g_strdup (self->username);
  pass = g_strdup (self->password);
  ca = g_strdup (self->ca_file);
  g_free (self->uri_resolved);
  self->uri_resolved = g_strdup (self->uri);
  GST_OBJECT_UNLOCK (self);

  {
    gchar **parts = g_strsplit (topic, "{stream-id}", -1);

    self->topic_resolved = g_strjoinv (stream_id, parts);
    g_strfreev (parts);
  }
  g_mutex_lock (&self->lock);
  self->stopping = FALSE;
  self->connected = FALSE;
  self->inflight = 0;
  self->published = 0;
  self->dropped = 0;
  self->warned_drop = FALSE;
  g_mutex_unlock (&self->lock);

  if (self->mqtt) {
    mosquitto_lib_init ();
    self->mosq = mosquitto_new (client_id, TRUE, self);
    if (self->mosq == NULL) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Cannot create an MQTT client"),
          ("mosquitto_new: %s", g_strerror (errno)));
      goto fail;
    }
    mosquitto_connect_callback_set (self->mosq, on_connect);
    mosquitto_disconnect_callback_set (self->mosq, on_disconnect);
    mosquitto_publish_callback_set (self->mosq, on_publish);
    if (user && mosquitto_username_pw_set (self->mosq, user, pass) != MOSQ_ERR_SUCCESS) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Invalid MQTT user name or password"), (NULL));
      goto fail;
    }
    if (ca && mosquitto_tls_set (self->mosq, ca, NULL, NULL, NULL, NULL) != MOSQ_ERR_SUCCESS) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Cannot use TLS CA file \"%s\"", ca), (NULL));
      goto fail;
    }
    self->thread = g_thread_try_new ("mmpublish-mqtt", mqtt_thread, self, &err);
  } else {
    if (g_str_equal (location, "-")) {
      self->file = stdout;
      self->own_file = FALSE;
    } else {
      self->file = fopen (location, "a");
      self->own_file = TRUE;
      if (self->file == NULL) {
        GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
            ("Cannot open \"%s\" for writing: %s", location, g_strerror (errno)), (NULL));
        goto fail;
      }
    }
    self->thread = g_thread_try_new ("mmpublish-file", file_thread, self, &err);
  }
  if (self->thread == NULL) {
    GST_ELEMENT_ERROR (
        self, RESOURCE, FAILED, ("Cannot start the publisher thread"), ("%s", err->message));
    g_clear_error (&err);
    goto fail;
  }
  g_free (location);
  g_free (topic);
  g_free (stream_id);
  g_free (client_id);
  g_free (user);
  g_free (pass);
  g_free (ca);
  return TRUE;

fail:
  g_free (location);
  g_free (topic);
  g_free (stream_id);
  g_free (client_id);
  g_free (user);
  g_free (pass);
  g_free (ca);
  gst_mm_publish_stop (trans);
  return FALSE;
}

static gboolean
gst_mm_publish_stop (GstBaseTransform *trans)
{
  GstMmPublish *self = GST_MM_PUBLISH (trans);
  guint left;

  g_mutex_lock (&self->lock);
  self->stopping = TRUE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (self->thread) {
    g_thread_join (self->thread);
    self->thread = NULL;
  }
  g_mutex_lock (&self->lock);
  left = g_queue_get_length (&self->queue);
  self->dropped += left;
  g_queue_clear_full (&self->queue, g_free);
  g_mutex_unlock (&self->lock);
  if (left)
    GST_WARNING_OBJECT (self, "%u decisions not published at stop", left);
  if (self->mosq) {
    mosquitto_destroy (self->mosq);
    self->mosq = NULL;
    mosquitto_lib_cleanup ();
  }
  if (self->file && self->own_file)
    fclose (self->file);
  self->file = NULL;
  g_clear_pointer (&self->topic_resolved, g_free);
  g_clear_pointer (&self->uri_resolved, g_free);
  return TRUE;
}

/* Waits until everything queued was published, or the flush timeout. */
static void
gst_mm_publish_flush (GstMmPublish *self)
{
  guint64 timeout;
  gint64 end;
  guint left;

  GST_OBJECT_LOCK (self);
  timeout = self->flush_timeout;
  GST_OBJECT_UNLOCK (self);
  end = g_get_monotonic_time () + (gint64)MIN (timeout / 1000, (guint64)G_MAXINT64 / 2);
  g_mutex_lock (&self->lock);
  while ((!g_queue_is_empty (&self->queue) || self->inflight > 0) && self->thread
      && g_get_monotonic_time () < end)
    g_cond_wait_until (&self->cond, &self->lock, MIN (end, g_get_monotonic_time () + 50000));
  left = g_queue_get_length (&self->queue) + self->inflight;
  g_mutex_unlock (&self->lock);
  if (left)
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
        ("%u decisions were not published within the flush timeout at EOS", left), (NULL));
}

static gboolean
gst_mm_publish_sink_event (GstBaseTransform *trans, GstEvent *event)
{
  GstMmPublish *self = GST_MM_PUBLISH (trans);

  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS)
    gst_mm_publish_flush (self);
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static GstFlowReturn
gst_mm_publish_transform_ip (GstBaseTransform *trans, GstBuffer *buf)
{
  GstMmPublish *self = GST_MM_PUBLISH (trans);
  const GstStructure *s = gst_buffer_get_mm_classification_structure (buf);
  gboolean first_drop = FALSE;
  guint64 dropped = 0;
  gchar *text;

  if (s == NULL)
    return GST_FLOW_OK;
  if (self->uri_resolved == NULL) {
    GST_OBJECT_LOCK (self);
    self->uri_resolved = g_strdup (self->uri);
    GST_OBJECT_UNLOCK (self);
    if (self->uri_resolved == NULL)
      self->uri_resolved = find_source_uri (self);
    if (self->uri_resolved == NULL)
      self->uri_resolved = g_strdup (""); /* looked once; written as null */
  }
  text = decision_json (self, s);

  g_mutex_lock (&self->lock);
  g_queue_push_tail (&self->queue, text);
  while (g_queue_get_length (&self->queue) > self->max_queue) {
    g_free (g_queue_pop_head (&self->queue));
    self->dropped++;
    dropped = self->dropped;
    if (!self->warned_drop)
      first_drop = self->warned_drop = TRUE;
  }
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (dropped)
    GST_WARNING_OBJECT (self,
        "queue full (%u): dropped the oldest decision (%" G_GUINT64_FORMAT " so far)",
        self->max_queue, dropped);
  if (first_drop)
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
        ("Decisions cannot be published as fast as they come; the oldest are dropped "
         "(max-queue %u)",
            self->max_queue),
        (NULL));
  return GST_FLOW_OK;
}

/* mmpublish is its own plugin module, so that the main plugin does not
 * depend on libmosquitto (built only when libmosquitto-dev is there). */
static gboolean
plugin_init (GstPlugin *plugin)
{
  return GST_ELEMENT_REGISTER (mmpublish, plugin);
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, mmpublish,
    "Publishes multimodal decisions (JSON lines, MQTT)", plugin_init, PACKAGE_VERSION, "LGPL",
    GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)

using System.Buffers;
using System.Collections.Concurrent;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Encodings.Web;
using System.Text.Json.Nodes;

namespace JobLog.Redaction;

/// <summary>A message rendered for the ledger: masked and bounded.</summary>
internal readonly record struct RenderedMessage(string Input, string TaskArgs, string TaskKwargs);

/// <summary>Renders a message object as <c>Input</c>, <c>TaskArgs</c> and <c>TaskKwargs</c> (docs/architecture.md#redaction).</summary>
internal sealed class MessageRenderer(Redactor redactor)
{
    private static readonly JsonSerializerOptions s_serializer = new()
    {
        MaxDepth = 64,
        ReferenceHandler = System.Text.Json.Serialization.ReferenceHandler.IgnoreCycles,
    };

    private static readonly JsonDocumentOptions s_document = new() { MaxDepth = 128 };

    private static readonly ConcurrentDictionary<Type, string[]?> s_positional = new();

    // The fast path's buffers, one set per thread: rendering runs on publish threads and on the writer's thread.
    [ThreadStatic]
    private static Buffers? t_buffers;

    /// <summary>A rendering as the writer stores it: its texts passed through <see cref="Redactor.Stored"/>.</summary>
    public RenderedMessage Stored(RenderedMessage rendered) => new(
        redactor.Stored(rendered.Input, StoredTextKind.Free) ?? "",
        redactor.Stored(rendered.TaskArgs, StoredTextKind.Json) ?? "[]",
        redactor.Stored(rendered.TaskKwargs, StoredTextKind.Json) ?? "{}");

    public RenderedMessage Render(object? message)
    {
        if (message is null)
        {
            return new RenderedMessage("", "[]", "{}");
        }

        // Taken, not borrowed: a getter that renders another message (re-entrancy) gets a set of its own.
        var buffers = t_buffers ?? new Buffers();
        t_buffers = null;
        try
        {
            return TryRenderFast(message, buffers, out var rendered) ? rendered : RenderSlow(message);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Whatever the message holds (a getter that throws, a lone surrogate, a cycle too deep), the task keeps its row.
            return NotSerializable(ex);
        }
        finally
        {
            if (buffers.TryReset())
            {
                t_buffers = buffers;
            }
        }
    }

    /// <summary>
    /// One serialization to UTF-8, one pooled parse, and masked writes straight to the three texts: no JSON DOM, no
    /// clones. Gives up (false) when a text would need shortening: the DOM path below handles bounding.
    /// </summary>
    private bool TryRenderFast(object message, Buffers buffers, out RenderedMessage rendered)
    {
        rendered = default;
        buffers.Json.Reset(buffers.Serialized);
        JsonSerializer.Serialize(buffers.Json, message, message.GetType(), s_serializer);
        if (buffers.Serialized.WrittenCount > redactor.MaxLength)
        {
            // Longer than any text may be once masked and bounded: the slow path shortens strings first.
            return false;
        }

        using var document = JsonDocument.Parse(buffers.Serialized.WrittenMemory, s_document);
        var root = document.RootElement;

        buffers.Compact.Reset(buffers.Output);
        WriteMasked(buffers.Compact, root);
        buffers.Compact.Flush();
        var kwargs = Encoding.UTF8.GetString(buffers.Output.WrittenSpan);
        if (kwargs.Length > redactor.MaxLength)
        {
            return false;
        }

        var args = "[]";
        var names = s_positional.GetOrAdd(message.GetType(), PositionalParameters);
        if (names is not null && root.ValueKind == JsonValueKind.Object)
        {
            buffers.Output.ResetWrittenCount();
            buffers.Compact.Reset(buffers.Output);
            buffers.Compact.WriteStartArray();
            foreach (var name in names)
            {
                if (FindProperty(root, name) is not { } property)
                {
                    buffers.Compact.WriteNullValue();
                }
                else if (redactor.IsSensitiveName(property.Name))
                {
                    buffers.Compact.WriteStringValue(redactor.Replacement);
                }
                else
                {
                    WriteMasked(buffers.Compact, property.Value);
                }
            }

            buffers.Compact.WriteEndArray();
            buffers.Compact.Flush();
            args = Encoding.UTF8.GetString(buffers.Output.WrittenSpan);
            if (args.Length > redactor.MaxLength)
            {
                return false;
            }
        }

        rendered = new RenderedMessage(RenderInput(root, buffers), args, kwargs);
        return true;
    }

    private void WriteMasked(Utf8JsonWriter writer, JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                foreach (var property in element.EnumerateObject())
                {
                    writer.WritePropertyName(property.Name);
                    if (redactor.IsSensitiveName(property.Name))
                    {
                        writer.WriteStringValue(redactor.Replacement);
                    }
                    else
                    {
                        WriteMasked(writer, property.Value);
                    }
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in element.EnumerateArray())
                {
                    WriteMasked(writer, item);
                }

                writer.WriteEndArray();
                break;
            default:
                element.WriteTo(writer);
                break;
        }
    }

    private static JsonProperty? FindProperty(JsonElement obj, string name)
    {
        foreach (var property in obj.EnumerateObject())
        {
            if (string.Equals(property.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                return property;
            }
        }

        return null;
    }

    /// <summary><c>Key=value, …</c>: strings as they are, anything else as (masked) JSON; each value cut at 250 characters.</summary>
    private string RenderInput(JsonElement root, Buffers buffers)
    {
        var sb = buffers.Text.Clear();
        if (root.ValueKind != JsonValueKind.Object)
        {
            sb.Append(ValueJson(root, buffers));
        }
        else
        {
            foreach (var property in root.EnumerateObject())
            {
                if (sb.Length > redactor.MaxLength)
                {
                    break;
                }

                if (sb.Length > 0)
                {
                    sb.Append(", ");
                }

                sb.Append(property.Name).Append('=');
                var value = property.Value;
                if (redactor.IsSensitiveName(property.Name))
                {
                    sb.Append(redactor.Replacement);
                }
                else if (value.ValueKind == JsonValueKind.String)
                {
                    sb.Append(Redactor.Truncate(value.GetString()!, 250));
                }
                else
                {
                    sb.Append(Redactor.Truncate(ValueJson(value, buffers), 250));
                }
            }
        }

        return redactor.Bound(sb.Replace('\n', ' ').Replace('\r', ' ').ToString());
    }

    // JsonNode.ToJsonString()'s text: the default (escaping) encoder, as the DOM path writes it.
    private string ValueJson(JsonElement value, Buffers buffers)
    {
        buffers.Output.ResetWrittenCount();
        buffers.Escaped.Reset(buffers.Output);
        WriteMasked(buffers.Escaped, value);
        buffers.Escaped.Flush();
        return Encoding.UTF8.GetString(buffers.Output.WrittenSpan);
    }

    private static RenderedMessage NotSerializable(Exception ex)
    {
        var marker = $"[not serializable: {ex.GetType().Name}]";
        return new RenderedMessage(marker, "[]", "{\"error\":\"" + marker + "\"}");
    }

    /// <summary>The DOM path: masks in place, then shortens long strings until each text fits its bound.</summary>
    internal RenderedMessage RenderSlow(object message)
    {
        var node = JsonSerializer.SerializeToNode(message, message.GetType(), s_serializer);
        redactor.Mask(node);
        var kwargs = redactor.JsonText(node?.DeepClone());
        var args = RenderArgs(message.GetType(), node);
        var input = RenderInput(node);
        return new RenderedMessage(input, args, kwargs);
    }

    private string RenderArgs(Type type, JsonNode? node)
    {
        var names = s_positional.GetOrAdd(type, PositionalParameters);
        if (names is null || node is not JsonObject obj)
        {
            return "[]";
        }

        var array = new JsonArray();
        foreach (var name in names)
        {
            var key = obj.Select(p => p.Key).FirstOrDefault(k => string.Equals(k, name, StringComparison.OrdinalIgnoreCase));
            array.Add(key is null ? null : obj[key]?.DeepClone());
        }

        return redactor.JsonText(array);
    }

    private string RenderInput(JsonNode? node)
    {
        var sb = new StringBuilder();
        if (node is JsonObject obj)
        {
            foreach (var (key, value) in obj)
            {
                if (sb.Length > redactor.MaxLength)
                {
                    break;
                }

                if (sb.Length > 0)
                {
                    sb.Append(", ");
                }

                sb.Append(key).Append('=');
                if (value is JsonValue v && v.TryGetValue<string>(out var s))
                {
                    sb.Append(Redactor.Truncate(s, 250));
                }
                else
                {
                    sb.Append(Redactor.Truncate(value?.ToJsonString() ?? "null", 250));
                }
            }
        }
        else
        {
            sb.Append(node?.ToJsonString() ?? "null");
        }

        return redactor.Bound(sb.Replace('\n', ' ').Replace('\r', ' ').ToString());
    }

    /// <summary>The fast path's reusable buffers and writers.</summary>
    private sealed class Buffers
    {
        private static readonly JsonWriterOptions s_relaxed = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };
        private static readonly JsonWriterOptions s_escaping = new() { SkipValidation = true };

        public ArrayBufferWriter<byte> Serialized { get; } = new(1024);

        public ArrayBufferWriter<byte> Output { get; } = new(1024);

        public Utf8JsonWriter Json { get; } = new(Stream.Null);

        public Utf8JsonWriter Compact { get; } = new(Stream.Null, s_relaxed);

        public Utf8JsonWriter Escaped { get; } = new(Stream.Null, s_escaping);

        public StringBuilder Text { get; } = new(256);

        /// <summary>Ready for the next message; false when a big message grew a buffer (it is then not kept).</summary>
        public bool TryReset()
        {
            if (Serialized.Capacity > 64 * 1024 || Output.Capacity > 64 * 1024 || Text.Capacity > 64 * 1024)
            {
                return false;
            }

            Serialized.ResetWrittenCount();
            Output.ResetWrittenCount();
            Json.Reset(Stream.Null);
            Compact.Reset(Stream.Null);
            Escaped.Reset(Stream.Null);
            return true;
        }
    }

    /// <summary>A positional record's primary-constructor parameter names, else null.</summary>
    private static string[]? PositionalParameters(Type type)
    {
        var isRecord = type.GetMethod("<Clone>$", BindingFlags.Public | BindingFlags.Instance) is not null;
        if (!isRecord)
        {
            return null;
        }

        var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var ctor = type.GetConstructors()
            .Where(c => c.GetParameters().Length > 0 && c.GetParameters().All(p => p.Name is not null && properties.Contains(p.Name)))
            .Where(c => !(c.GetParameters().Length == 1 && c.GetParameters()[0].ParameterType == type))
            .OrderByDescending(c => c.GetParameters().Length)
            .FirstOrDefault();
        return ctor?.GetParameters().Select(p => p.Name!).ToArray();
    }
}

using System.Buffers;
using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Encodings.Web;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace JobLog.Redaction;

/// <summary>A message rendered for the ledger: masked and bounded.</summary>
internal readonly record struct RenderedMessage(string Input, string TaskArgs, string TaskKwargs);

/// <summary>Renders a message object as <c>Input</c>, <c>TaskArgs</c> and <c>TaskKwargs</c> (docs/architecture.md#redaction).</summary>
internal sealed class MessageRenderer(Redactor redactor)
{
    private static readonly JsonSerializerOptions s_serializer = new()
    {
        MaxDepth = 64,
        ReferenceHandler = ReferenceHandler.IgnoreCycles,
        Converters = { new NotAwaitedConverter() },
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
            return TryRenderFast(message, buffers, out var rendered) || TryRenderLarge(buffers.Serialized.WrittenMemory, out rendered)
                ? rendered
                : RenderSlow(message);
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
    /// <remarks>
    /// The top-level properties are read once (<see cref="Buffers.Root"/>) for the three texts, and their names are the
    /// previous message's strings when equal (<see cref="Buffers.Names"/>): a name is a new string only when it changes.
    /// </remarks>
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
        var properties = buffers.Root;
        properties.Clear();
        if (root.ValueKind == JsonValueKind.Object)
        {
            foreach (var property in root.EnumerateObject())
            {
                var name = buffers.Name(property, properties.Count);
                properties.Add(new RootProperty(name, property.Value, redactor.IsSensitiveName(name)));
            }
        }

        buffers.Compact.Reset(buffers.Output);
        if (root.ValueKind == JsonValueKind.Object)
        {
            buffers.Compact.WriteStartObject();
            foreach (var property in properties)
            {
                buffers.Compact.WritePropertyName(property.Name);
                if (property.Sensitive)
                {
                    buffers.Compact.WriteStringValue(redactor.Replacement);
                }
                else
                {
                    WriteMasked(buffers.Compact, property.Value);
                }
            }

            buffers.Compact.WriteEndObject();
        }
        else
        {
            WriteMasked(buffers.Compact, root);
        }

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
                if (FindProperty(properties, name) is not { } property)
                {
                    buffers.Compact.WriteNullValue();
                }
                else if (property.Sensitive)
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

        rendered = new RenderedMessage(RenderInput(root, properties, buffers), args, kwargs);
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
                    var name = property.Name;
                    writer.WritePropertyName(name);
                    if (redactor.IsSensitiveName(name))
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

    private static RootProperty? FindProperty(List<RootProperty> properties, string name)
    {
        foreach (var property in properties)
        {
            if (string.Equals(property.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                return property;
            }
        }

        return null;
    }

    /// <summary><c>Key=value, …</c>: strings as they are, anything else as (masked) JSON; each value cut at 250 characters.</summary>
    private string RenderInput(JsonElement root, List<RootProperty> properties, Buffers buffers)
    {
        var sb = buffers.Text.Clear();
        if (root.ValueKind != JsonValueKind.Object)
        {
            sb.Append(ValueJson(root, buffers));
        }
        else
        {
            foreach (var property in properties)
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
                if (property.Sensitive)
                {
                    sb.Append(redactor.Replacement);
                }
                else if (!TryAppendShortScalar(sb, value))
                {
                    sb.Append(Redactor.Truncate(value.ValueKind == JsonValueKind.String ? value.GetString()! : ValueJson(value, buffers), 250));
                }
            }
        }

        return redactor.Bound(sb.Replace('\n', ' ').Replace('\r', ' ').ToString());
    }

    /// <summary>
    /// A number, <c>true</c>, <c>false</c>, <c>null</c>, or a string without escapes, of at most 250 bytes, appended as
    /// the input line writes it (the JSON text, or the string's characters) straight from the document's
    /// bytes, without a string of its own. False for anything else (nothing appended).
    /// </summary>
    private static bool TryAppendShortScalar(StringBuilder sb, JsonElement value)
    {
        const int Max = 250;
        ReadOnlySpan<byte> text;
        switch (value.ValueKind)
        {
            case JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False or JsonValueKind.Null:
                text = JsonMarshal.GetRawUtf8Value(value);
                break;
            case JsonValueKind.String:
                var raw = JsonMarshal.GetRawUtf8Value(value);
                if (raw.Length < 2 || raw[0] != (byte)'"' || raw[^1] != (byte)'"')
                {
                    return false;
                }

                text = raw[1..^1];
                if (text.Contains((byte)'\\'))
                {
                    return false;
                }

                break;
            default:
                return false;
        }

        // At most one character per byte: within the 250-character cut.
        if (text.Length > Max)
        {
            return false;
        }

        Span<char> chars = stackalloc char[Max];
        if (!Encoding.UTF8.TryGetChars(text, chars, out var written))
        {
            return false;
        }

        sb.Append(chars[..written]);
        return true;
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

    /// <summary>
    /// Past this many JSON tokens a message is rendered from its serialized text (<see cref="TryRenderLarge"/>), not
    /// through the DOM: the DOM's work grows with every entry while the texts stored are bounded (a dictionary of 100,000
    /// entries took 5.5 s and 139 MB, one of 1,000,000 47 s and 1.45 GB, on the sender's thread or the ledger writer's).
    /// </summary>
    internal const int LargeMessageTokens = 10_000;

    /// <summary>How much of a large message's serialized text the kwargs are masked from (as HTTP bodies are captured).</summary>
    internal const int LargeMessagePrefix = 64 * 1024;

    // How much of one top-level value the input reads (it keeps 250 characters of it).
    private const int LargeValuePrefix = 4 * 1024;

    /// <summary>
    /// A message of more than <see cref="LargeMessageTokens"/> tokens (<paramref name="json"/>, its serialized text),
    /// in one pass over the text and bounded work: the kwargs are the start of the text (<see cref="LargeMessagePrefix"/>),
    /// masked by the streaming pass that hides a sensitive value cut at its end, and end with <c>…</c>; the input names
    /// every top-level property, each value masked and cut as the DOM path cuts it; the args are <c>[]</c>. False (the
    /// DOM path) for a message with fewer tokens, long strings included.
    /// </summary>
    internal bool TryRenderLarge(ReadOnlyMemory<byte> json, out RenderedMessage rendered)
    {
        rendered = default;
        var reader = new Utf8JsonReader(json.Span, new JsonReaderOptions { MaxDepth = s_document.MaxDepth });
        var tokens = 0;
        while (tokens <= LargeMessageTokens && reader.Read())
        {
            tokens++;
        }

        if (tokens <= LargeMessageTokens)
        {
            return false;
        }

        var span = json.Span;
        var cut = span.Length > LargeMessagePrefix;
        var kwargs = redactor.MaskBody(cut ? span[..LargeMessagePrefix] : span, cut, span.Length) ?? "{}";
        reader = new Utf8JsonReader(span, new JsonReaderOptions { MaxDepth = s_document.MaxDepth });
        var input = new StringBuilder();
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            input.Append(kwargs);
        }
        else
        {
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName && input.Length <= redactor.MaxLength)
            {
                var name = reader.GetString()!;
                reader.Read();
                var start = (int)reader.TokenStartIndex;
                var value = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                reader.Skip();
                var length = (int)reader.BytesConsumed - start;
                input.Append(input.Length > 0 ? ", " : "").Append(name).Append('=');
                if (redactor.IsSensitiveName(name))
                {
                    input.Append(redactor.Replacement);
                }
                else if (value is not null)
                {
                    input.Append(Redactor.Truncate(value, 250));
                }
                else
                {
                    var part = span.Slice(start, Math.Min(length, LargeValuePrefix));
                    input.Append(Redactor.Truncate(redactor.MaskBody(part, length > LargeValuePrefix, length) ?? "null", 250));
                }
            }
        }

        rendered = new RenderedMessage(redactor.Bound(input.Replace('\n', ' ').Replace('\r', ' ').ToString()), "[]", kwargs);
        return true;
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
        private const int MaxNames = 64;

        private static readonly JsonWriterOptions s_relaxed = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };
        private static readonly JsonWriterOptions s_escaping = new() { SkipValidation = true };

        public ArrayBufferWriter<byte> Serialized { get; } = new(1024);

        public ArrayBufferWriter<byte> Output { get; } = new(1024);

        public Utf8JsonWriter Json { get; } = new(Stream.Null);

        public Utf8JsonWriter Compact { get; } = new(Stream.Null, s_relaxed);

        public Utf8JsonWriter Escaped { get; } = new(Stream.Null, s_escaping);

        public StringBuilder Text { get; } = new(256);

        /// <summary>The message's top-level properties, each name read once.</summary>
        public List<RootProperty> Root { get; } = [];

        /// <summary>The top-level names of the messages rendered on this thread, by position: reused when equal.</summary>
        public List<string> Names { get; } = [];

        /// <summary>The name of <paramref name="property"/>, the <paramref name="position"/>-th of its object: the string kept for that position when equal.</summary>
        public string Name(JsonProperty property, int position)
        {
            if (position < Names.Count && property.NameEquals(Names[position]))
            {
                return Names[position];
            }

            var name = property.Name;
            if (position < Names.Count)
            {
                Names[position] = name;
            }
            else if (position == Names.Count && position < MaxNames)
            {
                Names.Add(name);
            }

            return name;
        }

        /// <summary>Ready for the next message; false when a big message grew a buffer (it is then not kept).</summary>
        public bool TryReset()
        {
            if (Serialized.Capacity > 64 * 1024 || Output.Capacity > 64 * 1024 || Text.Capacity > 64 * 1024)
            {
                return false;
            }

            Root.Clear();
            Serialized.ResetWrittenCount();
            Output.ResetWrittenCount();
            // Onto the buffers they write to next: a writer reset onto a stream makes itself a new ArrayBufferWriter each time.
            Json.Reset(Serialized);
            Compact.Reset(Output);
            Escaped.Reset(Output);
            return true;
        }
    }

    /// <summary>A top-level property of the message: its name, value, and whether the name is sensitive.</summary>
    private readonly record struct RootProperty(string Name, JsonElement Value, bool Sensitive);

    /// <summary>
    /// Writes a task in a message (MassTransit's <c>MessageData&lt;T&gt;.Value</c>, a value loaded on demand) as a marker:
    /// serializing it would read <c>Task.Result</c>, which waits for the value (a repository's load, on the sender's or the
    /// writer's thread) and then stores it whole with the task's internals. The message's other properties (the message
    /// data's <c>Address</c>) are rendered as usual.
    /// </summary>
    private sealed class NotAwaitedConverter : JsonConverterFactory
    {
        public override bool CanConvert(Type typeToConvert) =>
            typeof(Task).IsAssignableFrom(typeToConvert) || typeToConvert == typeof(ValueTask) ||
            (typeToConvert.IsGenericType && typeToConvert.GetGenericTypeDefinition() == typeof(ValueTask<>));

        public override JsonConverter CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
            (JsonConverter)Activator.CreateInstance(typeof(Marker<>).MakeGenericType(typeToConvert))!;

        private sealed class Marker<T> : JsonConverter<T>
        {
            private static readonly string s_text = $"[not rendered: {Name(typeof(T))}, not awaited]";

            public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => throw new NotSupportedException();

            public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options) => writer.WriteStringValue(s_text);

            private static string Name(Type type) => type.IsGenericType
                ? $"{type.Name[..type.Name.IndexOf('`', StringComparison.Ordinal)]} of {string.Join(" and ", type.GetGenericArguments().Select(Name))}"
                : type.Name;
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

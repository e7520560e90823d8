using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace JobLog.Redaction;

/// <summary>
/// Structural JSON masking: the whole value of a sensitive name is hidden at any depth, and string values pass the
/// free-text patterns. A document the DOM cannot hold (duplicate names, broken escapes, too deep, cut short) is masked
/// by a streaming <see cref="Utf8JsonReader"/> pass over its tokens instead.
/// </summary>
internal sealed class JsonMasking(SensitiveNames names, TextPatterns patterns, RedactionOptions options)
{
    private static readonly JsonSerializerOptions s_compact = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        WriteIndented = false,
    };

    private static readonly JsonDocumentOptions s_document = new() { MaxDepth = 256, AllowDuplicateProperties = false };

    private static readonly JsonReaderOptions s_reader = new()
    {
        CommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        AllowMultipleValues = true,
        MaxDepth = 100_000,
    };

    private readonly byte[] _replacementJson = Encode(options.Replacement);

    /// <summary>Masks sensitive properties at any depth, in place.</summary>
    public void Mask(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var key in obj.Select(p => p.Key).ToList())
                {
                    if (names.IsSensitive(key))
                    {
                        obj[key] = options.Replacement;
                    }
                    else
                    {
                        Mask(obj[key]);
                    }
                }

                break;
            case JsonArray array:
                foreach (var item in array)
                {
                    Mask(item);
                }

                break;
        }
    }

    /// <summary>Serializes a masked JSON node within the length bound: long strings are shortened first, then the text is cut.</summary>
    public string Text(JsonNode? node, int limit)
    {
        Mask(node);
        var text = node?.ToJsonString(s_compact) ?? "null";
        if (text.Length <= limit)
        {
            return text;
        }

        ShortenStrings(node, options.MaxJsonStringLength);
        text = node?.ToJsonString(s_compact) ?? "null";
        return TextBounds.Truncate(text, limit);
    }

    /// <summary>A JSON body: the DOM pass when the document is well formed, else the streaming pass.</summary>
    public string MaskDocument(string text, int limit)
    {
        try
        {
            var node = JsonNode.Parse(text, documentOptions: s_document);
            return Text(node, limit);
        }
        catch (Exception ex) when (ex is JsonException or ArgumentException or InvalidOperationException or InsufficientExecutionStackException)
        {
            return TextBounds.Truncate(MaskStreaming(text, text.Length > limit ? options.MaxJsonStringLength : int.MaxValue), limit);
        }
    }

    /// <summary>
    /// Token by token: the value after a sensitive name (scalar or whole object/array) becomes the replacement; string
    /// values pass the free-text patterns; a string that cannot be decoded is hidden. A value cut by the end of the
    /// text is hidden when it belongs to a sensitive name; text after a syntax error is hidden. Never throws on input.
    /// </summary>
    public string MaskStreaming(string text, int maxStringLength = int.MaxValue)
    {
        var input = Encoding.UTF8.GetBytes(text);
        var output = new ArrayBufferWriter<byte>(input.Length + 16);
        var copied = 0;
        var hideFrom = -1;
        var hideDepth = -1;
        var sensitiveNext = false;
        var reader = new Utf8JsonReader(input, isFinalBlock: false, new JsonReaderState(s_reader));
        try
        {
            while (reader.Read())
            {
                var start = (int)reader.TokenStartIndex;
                if (hideFrom >= 0)
                {
                    // Inside a hidden object or array: skip to its end.
                    if (reader.TokenType is JsonTokenType.EndObject or JsonTokenType.EndArray && reader.CurrentDepth == hideDepth)
                    {
                        Replace(ref copied, hideFrom, (int)reader.BytesConsumed, _replacementJson);
                        hideFrom = -1;
                    }

                    continue;
                }

                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                        sensitiveNext = !TryGetString(ref reader, out var name) || names.IsSensitive(name);
                        continue;
                    case JsonTokenType.StartObject or JsonTokenType.StartArray when sensitiveNext:
                        hideFrom = start;
                        hideDepth = reader.CurrentDepth;
                        sensitiveNext = false;
                        continue;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray or JsonTokenType.StartObject or JsonTokenType.StartArray:
                        continue;
                }

                var end = (int)reader.BytesConsumed;
                if (sensitiveNext)
                {
                    Replace(ref copied, start, end, _replacementJson);
                    sensitiveNext = false;
                }
                else if (reader.TokenType == JsonTokenType.String)
                {
                    if (!TryGetString(ref reader, out var value))
                    {
                        Replace(ref copied, start, end, _replacementJson);
                    }
                    else
                    {
                        var masked = patterns.MaskFreeText(value);
                        if (masked.Length > maxStringLength)
                        {
                            masked = TextBounds.Truncate(masked, maxStringLength);
                        }

                        if (!ReferenceEquals(masked, value))
                        {
                            Replace(ref copied, start, end, Encode(masked));
                        }
                    }
                }
            }

            // The end of the text: a complete document, or a value cut short.
            if (hideFrom >= 0)
            {
                Replace(ref copied, hideFrom, input.Length, _replacementJson);
            }
            else if (sensitiveNext)
            {
                Replace(ref copied, (int)reader.BytesConsumed, input.Length, _replacementJson);
            }
            else if (input.Length > reader.BytesConsumed)
            {
                // An unfinished token (a string cut open, a number): masked as free text.
                var rest = Encoding.UTF8.GetString(input.AsSpan((int)reader.BytesConsumed));
                Replace(ref copied, (int)reader.BytesConsumed, input.Length, Encoding.UTF8.GetBytes(patterns.MaskBody(patterns.MaskFreeText(rest), cutAtCapture: true)));
            }
        }
        catch (JsonException)
        {
            var at = hideFrom >= 0 ? hideFrom : (int)reader.BytesConsumed;
            Replace(ref copied, at, input.Length, Encoding.UTF8.GetBytes(" " + Markers.InvalidJsonRest));
        }

        output.Write(input.AsSpan(copied));
        return Encoding.UTF8.GetString(output.WrittenSpan);

        void Replace(ref int from, int start, int end, ReadOnlySpan<byte> with)
        {
            output.Write(input.AsSpan(from, start - from));
            output.Write(with);
            from = end;
        }
    }

    private static bool TryGetString(ref Utf8JsonReader reader, out string value)
    {
        try
        {
            value = reader.GetString() ?? "";
            return true;
        }
        catch (InvalidOperationException)
        {
            // A lone surrogate escape or broken UTF-8 inside the string: it cannot be checked, so it is not kept.
            value = "";
            return false;
        }
    }

    private static byte[] Encode(string value) =>
        Encoding.UTF8.GetBytes("\"" + JsonEncodedText.Encode(TextBounds.Sanitize(value), JavaScriptEncoder.UnsafeRelaxedJsonEscaping) + "\"");

    private static void ShortenStrings(JsonNode? node, int max)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var key in obj.Select(p => p.Key).ToList())
                {
                    if (obj[key] is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > max)
                    {
                        obj[key] = TextBounds.Truncate(s, max);
                    }
                    else
                    {
                        ShortenStrings(obj[key], max);
                    }
                }

                break;
            case JsonArray array:
                for (var i = 0; i < array.Count; i++)
                {
                    if (array[i] is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > max)
                    {
                        array[i] = TextBounds.Truncate(s, max);
                    }
                    else
                    {
                        ShortenStrings(array[i], max);
                    }
                }

                break;
        }
    }
}

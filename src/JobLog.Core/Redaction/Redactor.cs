using System.Collections.Concurrent;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace JobLog.Redaction;

/// <summary>
/// The one redaction and truncation policy (DESIGN §7): sensitive names are hidden in headers, queries and JSON at
/// any depth, text bodies are masked by pattern, and everything is bounded. Masking always happens before truncation.
/// </summary>
internal sealed class Redactor
{
    internal const char Ellipsis = '…';

    private static readonly JsonSerializerOptions s_compact = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        WriteIndented = false,
    };

    private static readonly Regex s_urlCredentials = new(
        @"\b[a-z][a-z0-9+.-]*://[^:/@\s]+:([^@/\s]+)@", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));

    private readonly RedactionOptions _options;
    private readonly string[] _exactNames;
    private readonly string[][] _wildcardNames;
    private readonly Regex[] _bodyPatterns;
    private readonly Regex[] _tailPatterns;
    private readonly Regex _connectionStringPattern;
    private readonly (string Type, string Subtype)[] _textContentTypes;
    private readonly ConcurrentDictionary<string, bool> _nameCache = new(StringComparer.Ordinal);

    public Redactor(IOptions<JobLogOptions> options)
        : this(options.Value.Redaction)
    {
    }

    public Redactor(RedactionOptions options)
    {
        _options = options;
        var normalized = options.SensitiveNames.Select(Normalize).ToArray();
        _exactNames = normalized.Where(n => !n.Contains('*', StringComparison.Ordinal)).ToArray();
        _wildcardNames = normalized.Where(n => n.Contains('*', StringComparison.Ordinal))
            .Select(n => n.Split('*')).ToArray();
        _bodyPatterns = DefaultBodyPatterns(options.SensitiveNames)
            .Concat(options.BodyPatterns.Select(p => new Regex(p, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1))))
            .ToArray();
        _tailPatterns = TailPatterns(options.SensitiveNames).ToArray();
        _connectionStringPattern = ConnectionStringPattern(options.SensitiveNames);
        _textContentTypes = options.TextContentTypes.Select(ParseMediaType).Where(t => t.Type.Length > 0).ToArray();
    }

    public string Replacement => _options.Replacement;

    public int MaxLength => _options.MaxBodyLength;

    /// <summary>Bytes of a body read for masking: <see cref="RedactionOptions.MaxCapturedBodyBytes"/>, at least the stored length + 4.</summary>
    public int MaxCaptureBytes => Math.Max(_options.MaxCapturedBodyBytes, _options.MaxBodyLength + 4);

    /// <summary>True when a header, query or property name is sensitive.</summary>
    public bool IsSensitiveName(string name)
    {
        if (_nameCache.TryGetValue(name, out var cached))
        {
            return cached;
        }

        var n = Normalize(name);
        var sensitive = _exactNames.Contains(n, StringComparer.Ordinal) || _wildcardNames.Any(parts => MatchesWildcard(n, parts));
        if (_nameCache.Count < 10_000)
        {
            _nameCache[name] = sensitive;
        }

        return sensitive;
    }

    /// <summary>Cuts <paramref name="text"/> to <paramref name="max"/> characters, the last being '…'.</summary>
    public static string Truncate(string text, int max)
    {
        if (text.Length <= max)
        {
            return text;
        }

        var cut = max - 1;
        if (cut > 0 && char.IsHighSurrogate(text[cut - 1]))
        {
            cut--;
        }

        return string.Concat(text.AsSpan(0, Math.Max(cut, 0)), Ellipsis.ToString());
    }

    /// <summary>Bounded text (output, error messages): control characters but newline and tab removed, then cut.</summary>
    public string Bound(string? text, int? max = null)
    {
        if (text is null)
        {
            return "";
        }

        return Truncate(StripNul(text), max ?? _options.MaxBodyLength);
    }

    /// <summary>Bounded text, keeping the end (for logs where the last lines matter most).</summary>
    public static string TruncateFromLeft(string text, int max)
    {
        if (text.Length <= max)
        {
            return text;
        }

        var tail = text.AsSpan(text.Length - (max - 2));
        var newline = tail.IndexOf('\n');
        return newline < 0 ? "…\n" : string.Concat("…\n", tail[(newline + 1)..]);
    }

    /// <summary>Masks sensitive properties at any depth, in place.</summary>
    public void Mask(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var key in obj.Select(p => p.Key).ToList())
                {
                    if (IsSensitiveName(key))
                    {
                        obj[key] = Replacement;
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
    public string JsonText(JsonNode? node, int? max = null)
    {
        var limit = max ?? _options.MaxBodyLength;
        Mask(node);
        var text = node?.ToJsonString(s_compact) ?? "null";
        if (text.Length <= limit)
        {
            return text;
        }

        ShortenStrings(node, _options.MaxJsonStringLength);
        text = node?.ToJsonString(s_compact) ?? "null";
        return Truncate(text, limit);
    }

    /// <summary>Masks a text body: JSON is masked structurally, anything else by the form/multipart/XML patterns.</summary>
    public string MaskText(string text, int? max = null) => MaskText(text, max, cutAtCapture: false);

    /// <summary>
    /// As <see cref="MaskText(string, int?)"/>; when <paramref name="cutAtCapture"/> the text is only the start of a
    /// longer body, so a sensitive value left open at its end (no closing quote, tag or boundary) is hidden too.
    /// </summary>
    public string MaskText(string text, int? max, bool cutAtCapture)
    {
        var limit = max ?? _options.MaxBodyLength;
        text = StripNul(text);
        var trimmed = text.AsSpan().TrimStart();
        if (trimmed.Length > 0 && (trimmed[0] == '{' || trimmed[0] == '['))
        {
            try
            {
                var node = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { MaxDepth = 256 });
                return JsonText(node, limit);
            }
            catch (JsonException)
            {
                // Not JSON after all: fall through to the patterns.
            }
        }

        foreach (var pattern in _bodyPatterns)
        {
            text = ReplaceGroups(pattern, text, Replacement);
        }

        if (cutAtCapture)
        {
            foreach (var pattern in _tailPatterns)
            {
                text = ReplaceGroups(pattern, text, Replacement);
            }
        }

        return Truncate(text, limit);
    }

    /// <summary>A body given as bytes: UTF-8 text is masked; binary or invalid UTF-8 becomes a marker with its length.</summary>
    public string? MaskBody(ReadOnlySpan<byte> body, bool truncatedAtCapture, long totalLength)
    {
        if (body.IsEmpty)
        {
            return totalLength > 0 ? $"[binary or unread body: {totalLength} bytes]" : null;
        }

        if (!TryDecodeText(body, truncatedAtCapture, out var text))
        {
            return $"[binary body: {totalLength} bytes]";
        }

        var masked = MaskText(text, null, truncatedAtCapture);
        if (truncatedAtCapture && masked.Length < _options.MaxBodyLength && !masked.EndsWith(Ellipsis))
        {
            masked = Truncate(masked + Ellipsis, _options.MaxBodyLength);
        }

        return masked;
    }

    /// <summary>The marker stored for a body that was not read (streamed, not replayable, or not read by the endpoint).</summary>
    public static string NotRecorded(long? length) =>
        length is { } n ? $"[body not recorded: {n} bytes]" : "[body not recorded]";

    /// <summary>True when <paramref name="contentType"/> (a Content-Type header value) is one of <see cref="RedactionOptions.TextContentTypes"/>.</summary>
    public bool IsTextContentType(string? contentType)
    {
        if (string.IsNullOrWhiteSpace(contentType))
        {
            return false;
        }

        var (type, subtype) = ParseMediaType(contentType);
        foreach (var (t, st) in _textContentTypes)
        {
            if (!string.Equals(t, type, StringComparison.Ordinal))
            {
                continue;
            }

            if (st == "*" || string.Equals(st, subtype, StringComparison.Ordinal)
                || (st.StartsWith('*') && subtype.EndsWith(st[1..], StringComparison.Ordinal)))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// A command line, masked argument by argument: <c>--password=x</c>, <c>--token x</c>, <c>ApiKey=x</c>, and
    /// secrets inside values (<c>Password=x;</c> in connection strings, <c>user:pass@</c> in URLs). Bounded.
    /// </summary>
    public string MaskArguments(IEnumerable<string?> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var list = args.Select(a => a ?? "").ToList();
        var parts = new List<string>(list.Count);
        for (var i = 0; i < list.Count; i++)
        {
            var arg = StripNul(list[i]);
            var option = arg.StartsWith('-') || arg.StartsWith('/');
            var equals = arg.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0)
            {
                var key = arg[..equals];
                var value = arg[(equals + 1)..];
                parts.Add(Quote(key + "=" + (IsSensitiveName(KeyName(key)) ? Replacement : MaskValue(value))));
            }
            else if (option && IsSensitiveName(KeyName(arg)) && i + 1 < list.Count && !list[i + 1].StartsWith('-'))
            {
                parts.Add(Quote(arg));
                parts.Add(Replacement);
                i++;
            }
            else
            {
                parts.Add(Quote(MaskValue(arg)));
            }
        }

        return Truncate(string.Join(' ', parts), _options.MaxBodyLength);
    }

    /// <summary>Masks each value whose name is sensitive.</summary>
    public string NameValuesJson(IEnumerable<KeyValuePair<string, IEnumerable<string?>>> pairs, int? maxValueLength = null)
    {
        var obj = new JsonObject();
        var valueLimit = maxValueLength ?? _options.MaxJsonStringLength * 8;
        foreach (var (name, values) in pairs)
        {
            var key = Truncate(StripNul(name), 256);
            var list = values.Select(v => IsSensitiveName(name) ? Replacement : Truncate(StripNul(v ?? ""), valueLimit)).ToList();
            JsonNode value = list.Count == 1 ? JsonValue.Create(list[0])! : new JsonArray(list.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());
            obj[key] = value;
        }

        return JsonText(obj);
    }

    internal static bool TryDecodeText(ReadOnlySpan<byte> body, bool mayEndMidCharacter, out string text)
    {
        var span = body;
        if (mayEndMidCharacter)
        {
            // A capture cut at a fixed size may split a multi-byte character: drop the partial tail.
            var back = 0;
            while (back < 3 && back < span.Length && (span[span.Length - 1 - back] & 0xC0) == 0x80)
            {
                back++;
            }

            if (back < span.Length && (span[span.Length - 1 - back] & 0x80) != 0)
            {
                span = span[..(span.Length - 1 - back)];
            }
        }

        var utf8 = new UTF8Encoding(false, throwOnInvalidBytes: true);
        try
        {
            text = utf8.GetString(span);
        }
        catch (DecoderFallbackException)
        {
            text = "";
            return false;
        }

        var control = 0;
        foreach (var c in text)
        {
            if (c < 0x20 && c != '\n' && c != '\r' && c != '\t')
            {
                control++;
            }
        }

        // Text with many control characters is binary that happens to be valid UTF-8.
        return control <= text.Length / 100;
    }

    internal static string Normalize(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (var c in name)
        {
            if (c is not ('-' or '_' or '.' or ' '))
            {
                sb.Append(char.ToLowerInvariant(c));
            }
        }

        return sb.ToString();
    }

    private static string StripNul(string text) =>
        text.Contains('\0', StringComparison.Ordinal) ? text.Replace("\0", "", StringComparison.Ordinal) : text;

    // "--ConnectionStrings:Db" → "Db"; "/p:ApiKey" → "ApiKey": the last segment names the setting.
    private static string KeyName(string key)
    {
        var name = key.TrimStart('-', '/');
        var colon = name.LastIndexOf(':');
        return colon >= 0 && colon < name.Length - 1 ? name[(colon + 1)..] : name;
    }

    private static string Quote(string arg) =>
        arg.Length == 0 || arg.Any(char.IsWhiteSpace) ? "\"" + arg.Replace("\"", "\\\"", StringComparison.Ordinal) + "\"" : arg;

    private string MaskValue(string value)
    {
        value = ReplaceGroups(_connectionStringPattern, value, Replacement);
        return ReplaceGroups(s_urlCredentials, value, Replacement);
    }

    private static (string Type, string Subtype) ParseMediaType(string contentType)
    {
        var media = contentType.AsSpan();
        var semicolon = media.IndexOf(';');
        if (semicolon >= 0)
        {
            media = media[..semicolon];
        }

        media = media.Trim();
        var slash = media.IndexOf('/');
        if (slash <= 0)
        {
            return ("", "");
        }

        return (media[..slash].ToString().ToLowerInvariant(), media[(slash + 1)..].ToString().ToLowerInvariant());
    }

    private static bool MatchesWildcard(string name, string[] parts)
    {
        var position = 0;
        for (var i = 0; i < parts.Length; i++)
        {
            var part = parts[i];
            if (part.Length == 0)
            {
                continue;
            }

            if (i == 0)
            {
                if (!name.StartsWith(part, StringComparison.Ordinal))
                {
                    return false;
                }

                position = part.Length;
                continue;
            }

            var found = name.IndexOf(part, position, StringComparison.Ordinal);
            if (found < 0)
            {
                return false;
            }

            position = found + part.Length;
        }

        var last = parts[^1];
        return last.Length == 0 || name.EndsWith(last, StringComparison.Ordinal);
    }

    private static void ShortenStrings(JsonNode? node, int max)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var key in obj.Select(p => p.Key).ToList())
                {
                    if (obj[key] is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > max)
                    {
                        obj[key] = Truncate(s, max);
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
                        array[i] = Truncate(s, max);
                    }
                    else
                    {
                        ShortenStrings(array[i], max);
                    }
                }

                break;
        }
    }

    private static IEnumerable<Regex> DefaultBodyPatterns(IEnumerable<string> names)
    {
        // Sensitive names as a regex over raw text: separators optional, '*' as any run of name characters.
        var alternatives = string.Join('|', names.Select(NameRegex));
        const RegexOptions o = RegexOptions.IgnoreCase | RegexOptions.CultureInvariant;
        var timeout = TimeSpan.FromSeconds(1);
        // Form fields: name=value up to the next & (values may span lines).
        yield return new Regex($@"(?:^|[&?\s])(?:{alternatives})=([^&]*)", o, timeout);
        // Multipart parts: name="password" ... blank line ... value up to the next boundary line.
        yield return new Regex($@"name=""(?:{alternatives})""[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n([\s\S]*?)(?=\r?\n--)", o, timeout);
        // XML elements: <password>value</password>.
        yield return new Regex($@"<((?:\w+:)?(?:{alternatives}))(?:\s[^>]*)?>([\s\S]*?)</\1>", o, timeout);
        // JSON-like fragments in text that failed to parse: "password": "value".
        yield return new Regex($@"[""'](?:{alternatives})[""']\s*:\s*[""']((?:[^""'\\]|\\.)*)[""']", o, timeout);
        // Connection strings: ;Password=value; (a value may hold spaces and '&', never a semicolon). At the start of the
        // text the form pattern above applies; this one needs the ';' so that form bodies keep their other fields.
        yield return new Regex($@";\s*(?:{alternatives})\s*=\s*([^;]*)", o, timeout);
        // Credentials in URLs: scheme://user:password@host.
        yield return s_urlCredentials;
    }

    private static Regex ConnectionStringPattern(IEnumerable<string> names) => new(
        $@"(?:^|;)\s*(?:{string.Join('|', names.Select(NameRegex))})\s*=\s*([^;]*)",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant,
        TimeSpan.FromSeconds(1));

    /// <summary>Sensitive values cut open by the capture bound: they run to the end of the captured text.</summary>
    private static IEnumerable<Regex> TailPatterns(IEnumerable<string> names)
    {
        var alternatives = string.Join('|', names.Select(NameRegex));
        const RegexOptions o = RegexOptions.IgnoreCase | RegexOptions.CultureInvariant;
        var timeout = TimeSpan.FromSeconds(1);
        // "password": "value… (no closing quote before the end).
        yield return new Regex($@"[""'](?:{alternatives})[""']\s*:\s*[""']((?:[^""'\\]|\\[\s\S]?)*)\z", o, timeout);
        // <password>value… (no closing tag before the end).
        yield return new Regex($@"<((?:\w+:)?(?:{alternatives}))(?:\s[^>]*)?>([^<]*)\z", o, timeout);
        // A multipart value with no boundary after it.
        yield return new Regex($@"name=""(?:{alternatives})""[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n((?:[^\r\n]|\r?\n(?!--))*)\z", o, timeout);
    }

    private static string NameRegex(string name)
    {
        var core = string.Join("[-_.]?", name.Where(c => c is not ('*' or '-' or '_' or '.'))
            .Select(c => Regex.Escape(c.ToString())));
        return name.Contains('*', StringComparison.Ordinal) ? $"[^&=\\s\"'<>;:]*{core}[^&=\\s\"'<>;:]*" : core;
    }

    private static string ReplaceGroups(Regex pattern, string text, string replacement)
    {
        MatchCollection matches;
        try
        {
            matches = pattern.Matches(text);
            if (matches.Count == 0)
            {
                return text;
            }
        }
        catch (RegexMatchTimeoutException)
        {
            return "[body hidden: redaction timed out]";
        }

        var sb = new StringBuilder(text);
        for (var m = matches.Count - 1; m >= 0; m--)
        {
            var match = matches[m];
            var replaced = false;
            for (var g = match.Groups.Count - 1; g >= 1; g--)
            {
                var group = match.Groups[g];
                // The last group that took part holds the value (the XML pattern's first group is the element name).
                if (!group.Success)
                {
                    continue;
                }

                sb.Remove(group.Index, group.Length).Insert(group.Index, replacement);
                replaced = true;
                break;
            }

            if (!replaced && match.Groups.Count == 1)
            {
                sb.Remove(match.Index, match.Length).Insert(match.Index, replacement);
            }
        }

        return sb.ToString();
    }
}

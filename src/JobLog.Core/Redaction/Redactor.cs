using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace JobLog.Redaction;

/// <summary>How a stored text is masked again on the writer side (<see cref="Redactor.Stored"/>).</summary>
internal enum StoredTextKind
{
    /// <summary>Exception texts, output, arguments, rendered input: the free-text patterns.</summary>
    Free,

    /// <summary>JSON the recorder produced (headers, queries, task arguments): the streaming JSON pass.</summary>
    Json,

    /// <summary>A body: JSON when it looks like JSON, else the body patterns.</summary>
    Body,
}

/// <summary>
/// The one redaction and truncation policy (docs/architecture.md#redaction): sensitive names are hidden in headers, queries and JSON at
/// any depth (<see cref="JsonMasking"/>), text is masked by pattern (<see cref="TextPatterns"/>), bodies are decoded
/// strictly (<see cref="BodyText"/>) and everything is bounded (<see cref="TextBounds"/>). Masking always happens before
/// truncation. No method throws because of the text it is given: what cannot be masked becomes a marker.
/// </summary>
internal sealed class Redactor
{
    internal const char Ellipsis = TextBounds.Ellipsis;

    private readonly RedactionOptions _options;
    private readonly SensitiveNames _names;
    private readonly TextPatterns _patterns;
    private readonly JsonMasking _json;
    private readonly BodyText _bodies;

    public Redactor(IOptions<JobLogOptions> options)
        : this(options.Value.Redaction)
    {
    }

    public Redactor(RedactionOptions options)
    {
        _options = options;
        _names = new SensitiveNames(options.SensitiveNames);
        _patterns = TextPatterns.For(_names, options);
        _json = new JsonMasking(_names, _patterns, options);
        _bodies = new BodyText(options.TextContentTypes);
    }

    public string Replacement => _options.Replacement;

    public int MaxLength => _options.MaxBodyLength;

    /// <summary>Bytes of a body read for masking: <see cref="RedactionOptions.MaxCapturedBodyBytes"/>, at least the stored length + 4.</summary>
    public int MaxCaptureBytes => Math.Max(_options.MaxCapturedBodyBytes, _options.MaxBodyLength + 4);

    /// <summary>True when a header, query or property name is sensitive.</summary>
    public bool IsSensitiveName(string name) => _names.IsSensitive(name);

    /// <summary>Cuts <paramref name="text"/> to <paramref name="max"/> characters, the last being '…'.</summary>
    public static string Truncate(string text, int max) => TextBounds.Truncate(text, max);

    /// <summary>Bounded text, keeping the end (for logs where the last lines matter most).</summary>
    public static string TruncateFromLeft(string text, int max) => TextBounds.TruncateFromLeft(text, max);

    /// <summary>Bounded text (output, error messages): NUL removed, then cut. Masked by the writer (<see cref="Stored"/>).</summary>
    public string Bound(string? text, int? max = null) =>
        text is null ? "" : TextBounds.Truncate(TextBounds.StripNul(text), max ?? _options.MaxBodyLength);

    /// <summary>An exception's type, message and stack trace, bounded; a marker when its text cannot be had (a throwing override).</summary>
    public string ExceptionText(Exception exception)
    {
        try
        {
            // Exception.ToString(), the trace's files and lines resolved once per distinct trace (ExceptionTexts).
            return Bound(ExceptionTexts.Of(exception));
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return $"{exception.GetType().FullName}: {Markers.NotRendered(ex)}";
        }
    }

    /// <summary>Masks sensitive properties at any depth, in place.</summary>
    public void Mask(JsonNode? node) => _json.Mask(node);

    /// <summary>Serializes a masked JSON node within the length bound: long strings are shortened first, then the text is cut.</summary>
    public string JsonText(JsonNode? node, int? max = null)
    {
        try
        {
            return _json.Text(node, max ?? _options.MaxBodyLength);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A string the JSON writer refuses (a lone surrogate): the whole value is hidden.
            return Markers.NotMasked;
        }
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
        try
        {
            text = TextBounds.StripNul(text);
            if (LooksLikeJson(text))
            {
                return _json.MaskDocument(text, limit);
            }

            return TextBounds.Truncate(_patterns.MaskBody(text, cutAtCapture), limit);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return Markers.NotMasked;
        }
    }

    /// <summary>A body given as bytes: UTF-8 text is masked; binary or invalid UTF-8 becomes a marker with its length.</summary>
    public string? MaskBody(ReadOnlySpan<byte> body, bool truncatedAtCapture, long totalLength)
    {
        if (body.IsEmpty)
        {
            return totalLength > 0 ? $"[binary or unread body: {totalLength} bytes]" : null;
        }

        if (!BodyText.TryDecode(body, truncatedAtCapture, out var text))
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

    /// <summary>
    /// The marker stored for a body that ended before its declared length with nothing of it read: how much came of how
    /// much was declared (the declared length is not the body's size).
    /// </summary>
    public static string CutShort(long read, long declared) => $"[body cut short: {read} of {declared} bytes]";

    /// <summary>True when <paramref name="contentType"/> (a Content-Type header value) is one of <see cref="RedactionOptions.TextContentTypes"/>.</summary>
    public bool IsTextContentType(string? contentType) => _bodies.IsTextContentType(contentType);

    /// <summary>
    /// A command line, masked argument by argument: <c>--password=x</c>, <c>--token x</c> (also when x starts with
    /// '-'), <c>--secret:x</c>, <c>-p x</c>, <c>ApiKey=x</c>, and secrets inside values (<c>Password=x;</c> in
    /// connection strings, <c>user:pass@</c> in URLs, tokens). Bounded.
    /// </summary>
    public string MaskArguments(IEnumerable<string?> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        try
        {
            return CommandArguments.Mask(args.Select(a => TextBounds.StripNul(a ?? "")).ToList(), _names, _patterns, Replacement, _options.MaxBodyLength);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return Markers.NotMasked;
        }
    }

    /// <summary>Masks each value whose name is sensitive.</summary>
    public string NameValuesJson(IEnumerable<KeyValuePair<string, IEnumerable<string?>>> pairs, int? maxValueLength = null)
    {
        var obj = new JsonObject();
        var valueLimit = maxValueLength ?? _options.MaxJsonStringLength * 8;
        foreach (var (name, values) in pairs)
        {
            var key = Truncate(TextBounds.Sanitize(name), 256);
            var sensitive = IsSensitiveName(name);
            var list = values.Select(v => sensitive ? Replacement : Truncate(TextBounds.Sanitize(v ?? ""), valueLimit)).ToList();
            JsonNode value = list.Count == 1 ? JsonValue.Create(list[0])! : new JsonArray(list.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());
            obj[key] = value;
        }

        return JsonText(obj);
    }

    /// <summary>
    /// The writer's pass over a text about to be stored: the free-text patterns (or the streaming JSON pass), broken
    /// UTF-16 and NUL repaired, then bounded by <paramref name="max"/>. Idempotent; never throws.
    /// </summary>
    public string? Stored(string? text, StoredTextKind kind, int? max = null)
    {
        if (string.IsNullOrEmpty(text))
        {
            return text;
        }

        try
        {
            var clean = TextBounds.Sanitize(text);
            if (!_patterns.MayHoldSecret(clean))
            {
                return ReferenceEquals(clean, text) ? text : Truncate(clean, max ?? _options.MaxBodyLength);
            }

            // A text shaped as one of JobLog's stand-ins is masked as text, not read as JSON: it may be a client's body
            // (the shape is not proof of where it came from), so the application's patterns still apply to it.
            var masked = kind switch
            {
                StoredTextKind.Json or StoredTextKind.Body when LooksLikeJson(clean) && !IsStandIn(clean) => CutJson(clean),
                StoredTextKind.Body => _patterns.MaskBody(clean, cutAtCapture: clean.EndsWith(Ellipsis)),
                _ => _patterns.MaskFreeText(clean),
            };
            return masked.Length == text.Length && string.Equals(masked, text, StringComparison.Ordinal)
                ? text
                : Truncate(masked, max ?? _options.MaxBodyLength);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return Markers.NotMasked;
        }
    }

    /// <summary>
    /// A text JobLog stored in place of a body (a hidden body's <see cref="Replacement"/>, <c>[body not recorded: 22
    /// bytes]</c>, <c>[gzip body: 75 bytes]</c>): nothing in it to mask. They begin with '[', and with a body pattern of
    /// the application's (which makes every text "may hold a secret") they were read as JSON and stored as
    /// <c>[ [hidden: the rest is not valid JSON]</c>.
    /// </summary>
    private bool IsStandIn(string text) => string.Equals(text, _options.Replacement, StringComparison.Ordinal) || s_standIn.IsMatch(text);

    private static readonly Regex s_standIn = new(
        @"\A\[(?:body not recorded|body cut short|[a-z, -]{1,40} body)(?:: (?:[0-9]{1,19} of )?[0-9]{1,19} bytes)?\]\z",
        RegexOptions.CultureInvariant | RegexOptions.ExplicitCapture,
        TimeSpan.FromSeconds(1));

    /// <summary>JSON the recorder cut (ending in '…'): masked as a document cut short, the ellipsis put back.</summary>
    private string CutJson(string text) =>
        text.EndsWith(Ellipsis) ? _json.MaskStreaming(text[..^1]) + Ellipsis : _json.MaskStreaming(text);

    internal static bool TryDecodeText(ReadOnlySpan<byte> body, bool mayEndMidCharacter, out string text) =>
        BodyText.TryDecode(body, mayEndMidCharacter, out text);

    internal static string Normalize(string name) => SensitiveNames.Normalize(name);

    private static bool LooksLikeJson(string text)
    {
        var trimmed = text.AsSpan().TrimStart();
        return trimmed.Length > 0 && (trimmed[0] == '{' || trimmed[0] == '[');
    }
}

using System.Buffers;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace JobLog.Redaction;

/// <summary>
/// Masks secrets in text by pattern: <c>name=value</c> (forms, queries, URLs, connection strings), <c>name: value</c>,
/// multipart parts, XML elements, JSON-like fragments, URL credentials, bearer tokens, JWTs, card numbers (Luhn) and
/// private keys. Bodies (<see cref="MaskBody"/>) keep the form rule "a value runs to the next &amp;"; free text
/// (<see cref="MaskFreeText"/>: errors, output, arguments, JSON string values) ends a value at whitespace or punctuation.
/// </summary>
internal sealed class TextPatterns
{
    private const RegexOptions Options = RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Compiled;

    // Wall-clock: generous, so that a loaded machine (or the first, compiling match) does not turn text into a marker.
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, TextPatterns> s_compiled = new(StringComparer.Ordinal);

    private static readonly Regex s_urlCredentials = new(
        @"\b[a-z][a-z0-9+.-]*://[^:/@\s""']+:([^@/\s""']+)@", Options, s_timeout);

    private static readonly Regex s_bearer = new(@"\b(?:Bearer|Basic)\s+([A-Za-z0-9._~+/=-]{8,})", Options, s_timeout);

    private static readonly Regex s_jwt = new(@"\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*", RegexOptions.CultureInvariant, s_timeout);

    private static readonly Regex s_privateKey = new(
        @"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\z)", RegexOptions.CultureInvariant, s_timeout);

    private static readonly Regex s_card = new(@"(?<![\d.-])[2-6](?:[ -]?\d){12,18}(?![\d.-])", RegexOptions.CultureInvariant, s_timeout);

    private static readonly SearchValues<char> s_nestedOrEncodedName = SearchValues.Create("[]%+");

    private static readonly SearchValues<string> s_triggers =
        SearchValues.Create(["://", "eyJ", "bearer", "basic", "PRIVATE KEY"], StringComparison.OrdinalIgnoreCase);

    private readonly SensitiveNames _names;
    private readonly string _replacement;
    private readonly Regex[] _bodyPatterns;
    private readonly Regex[] _freeTextPatterns;
    private readonly Regex[] _tailPatterns;
    private readonly Regex[] _custom;
    private readonly Regex _connectionString;
    private readonly Dictionary<Regex, string?> _anchors;

    /// <summary>The patterns for these options, compiled once per process for the same names, replacement and custom patterns.</summary>
    public static TextPatterns For(SensitiveNames names, RedactionOptions options)
    {
        var key = string.Join('\u0001', [options.Replacement, .. options.SensitiveNames, "\u0002", .. options.BodyPatterns]);
        return s_compiled.Count < 64 ? s_compiled.GetOrAdd(key, _ => new TextPatterns(names, options)) : new TextPatterns(names, options);
    }

    public TextPatterns(SensitiveNames names, RedactionOptions options)
    {
        _names = names;
        _replacement = options.Replacement;
        _custom = options.BodyPatterns.Select(p => new Regex(p, RegexOptions.CultureInvariant, s_timeout)).ToArray();
        var n = names.Alternatives;
        var masked = Regex.Escape(options.Replacement);
        var common = new[]
        {
            // Multipart parts, the name quoted or not (.NET's MultipartFormDataContent writes name=password).
            new Regex($@"\bname=(?:""(?:{n})""|(?:{n})(?=[;\s]))[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n([\s\S]*?)(?=\r?\n--|\z)", Options, s_timeout),
            // XML elements: <password>value</password>.
            new Regex($@"<((?:\w+:)?(?:{n}))(?:\s[^>]*)?>([\s\S]*?)</\1\s*>", Options, s_timeout),
            // JSON-like fragments: "password": "value" (escapes kept inside), and unquoted values.
            new Regex($@"(?<![\w-])[""']?(?:{n})[""']?\s*:\s*[""']((?:[^""'\\]|\\.)*)[""']", Options, s_timeout),
            new Regex($@"[""'](?:{n})[""']\s*:\s*([^\s""'\[{{,}}\]][^,}}\]\r\n]*)", Options, s_timeout),
            // An object or array under a sensitive name in text that is not parsed as JSON: the rest of the line.
            new Regex($@"(?<![\w-])[""']?(?:{n})[""']?\s*:\s*((?!{masked})[{{\[][^\r\n]*)", Options, s_timeout),
            // Connection strings: ;Password=value; (a value may hold spaces and '&', never a semicolon or a quote).
            new Regex($@";\s*(?:{n})\s*=\s*([^;""'\r\n]*)", Options, s_timeout),
            // name: value, name : value (headers, YAML, logs): the rest of the line.
            new Regex($@"(?:^|(?<=[\s{{,;(\[""']))(?:{n})[""']?[ \t]*:[ \t]+(?!{masked})([^\s""'{{][^\r\n]*)", Options | RegexOptions.Multiline, s_timeout),
            // XML and HTML attributes: password="value".
            new Regex($@"(?<=[\s<])(?:{n})\s*=\s*""([^""]*)""", Options, s_timeout),
        };
        _bodyPatterns =
        [
            // Form fields: name=value up to the next & (values may span lines).
            new Regex($@"(?:^|[&?\s])(?:{n})=([^&]*)", Options, s_timeout),
            .. common,
        ];
        _freeTextPatterns =
        [
            .. common,
            // name=value in free text, queries and URLs: to the next separator. A nested name (user[password]=,
            // Users[0].Password=) is read from its last part.
            new Regex($@"(?:^|(?<=[&?#\s;,(\[\]{{""'/|=:]))(?:{n})\]?\s*=\s*([^&#\s;,""'<>)\]}}|]+)", Options, s_timeout),
            // A multipart part whose line breaks were flattened (a message's Input): everything to the next boundary.
            new Regex($@"\bname=(?:""(?:{n})""|(?:{n})(?=[;\s]))((?!\s*{masked})[\s\S]*?)(?=\r?\n--|\s--\S|\z)", Options, s_timeout),
            // --password value, -p value and --secret:value in text that quotes a command line.
            new Regex($@"(?<=\s|^)--?(?:{n})(?::|\s+)(?!-)([^\s""']+)", Options, s_timeout),
        ];
        _connectionString = new Regex($@"(?:^|;)\s*(?:{n})\s*=\s*([^;]*)", Options, s_timeout);
        _tailPatterns =
        [
            // "password": "value… (no closing quote before the end).
            new Regex($@"[""'](?:{n})[""']\s*:\s*[""']((?:[^""'\\]|\\[\s\S]?)*)\z", Options, s_timeout),
            // <password>value… (no closing tag before the end).
            new Regex($@"<((?:\w+:)?(?:{n}))(?:\s[^>]*)?>([^<]*)\z", Options, s_timeout),
            // scheme://user:password… (no '@' before the end).
            new Regex(@"\b[a-z][a-z0-9+.-]*://[^:/@\s""']+:([^@/\s""']+)\z", Options, s_timeout),
            // A multipart value with no boundary after it.
            new Regex($@"\bname=(?:""(?:{n})""|(?:{n})(?=[;\s]))[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n((?:[^\r\n]|\r?\n(?!--))*)\z", Options, s_timeout),
        ];
        _anchors = _bodyPatterns.Concat(_freeTextPatterns).Concat(_tailPatterns).Distinct().ToDictionary(r => r, Anchor);
    }

    /// <summary>
    /// False only when no rule can match: no sensitive name, no URL, no bearer/basic, no JWT, no private key, no run of
    /// digits long enough for a card number, and no custom pattern.
    /// </summary>
    public bool MayHoldSecret(ReadOnlySpan<char> text)
    {
        if (_custom.Length > 0 || text.ContainsAny(_names.Needles) || text.ContainsAny(s_triggers))
        {
            return true;
        }

        var digits = 0;
        foreach (var c in text)
        {
            if (char.IsAsciiDigit(c))
            {
                if (++digits >= 13)
                {
                    return true;
                }
            }
            else if (c is not (' ' or '-'))
            {
                digits = 0;
            }
        }

        return false;
    }

    /// <summary>A text body (form, multipart, XML, plain): every rule, form values to the next '&amp;'.</summary>
    public string MaskBody(string text, bool cutAtCapture)
    {
        text = MaskNestedFormNames(text);
        if (!MayHoldSecret(text))
        {
            return text;
        }

        foreach (var pattern in _bodyPatterns)
        {
            text = ReplaceGroups(pattern, text);
        }

        if (cutAtCapture)
        {
            foreach (var pattern in _tailPatterns)
            {
                text = ReplaceGroups(pattern, text);
            }
        }

        return MaskTokens(text);
    }

    /// <summary>
    /// Form fields whose names the form rule cannot read as written but ASP.NET Core's form reader decodes: nested
    /// (<c>user[password]</c>, MVC's <c>Users[0].Password</c>) or percent-encoded (<c>p%61ssword</c>, <c>pass+word</c>).
    /// The name is decoded, and when it or one of its parts is sensitive the value is hidden to the next '&amp;'.
    /// </summary>
    private string MaskNestedFormNames(string text)
    {
        if (text.AsSpan().IndexOfAny(s_nestedOrEncodedName) < 0 || !text.Contains('=', StringComparison.Ordinal))
        {
            return text;
        }

        var fields = text.Split('&');
        var changed = false;
        for (var i = 0; i < fields.Length; i++)
        {
            var equals = fields[i].IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0 || fields[i].AsSpan(0, equals).IndexOfAny(s_nestedOrEncodedName) < 0
                || fields[i].AsSpan(equals + 1).SequenceEqual(_replacement))
            {
                continue;
            }

            var name = WebUtility.UrlDecode(fields[i][..equals]);
            if (_names.IsSensitive(name))
            {
                fields[i] = fields[i][..(equals + 1)] + _replacement;
                changed = true;
            }
        }

        return changed ? string.Join('&', fields) : text;
    }

    /// <summary>Free text (exception texts, output, arguments, a JSON string's value).</summary>
    public string MaskFreeText(string text)
    {
        if (!MayHoldSecret(text))
        {
            return text;
        }

        foreach (var pattern in _freeTextPatterns)
        {
            text = ReplaceGroups(pattern, text);
        }

        return MaskTokens(text);
    }

    /// <summary>One argument's value: connection-string passwords, URL credentials, tokens.</summary>
    public string MaskValue(string value)
    {
        if (!MayHoldSecret(value))
        {
            return value;
        }

        value = ReplaceGroups(_connectionString, value);
        return MaskFreeText(value);
    }

    /// <summary>Shapes that are secret wherever they appear, whatever their name.</summary>
    private string MaskTokens(string text)
    {
        text = ReplaceGroups(s_urlCredentials, text);
        text = ReplaceGroups(s_bearer, text);
        text = ReplaceGroups(s_privateKey, text);
        text = ReplaceGroups(s_jwt, text);
        text = ReplaceCards(text);
        foreach (var pattern in _custom)
        {
            text = ReplaceGroups(pattern, text);
        }

        return text;
    }

    private string ReplaceCards(string text)
    {
        try
        {
            return s_card.Replace(text, m => Luhn(m.ValueSpan) ? _replacement : m.Value);
        }
        catch (RegexMatchTimeoutException)
        {
            return Markers.TimedOut;
        }
    }

    internal static bool Luhn(ReadOnlySpan<char> number)
    {
        var sum = 0;
        var count = 0;
        for (var i = number.Length - 1; i >= 0; i--)
        {
            if (!char.IsAsciiDigit(number[i]))
            {
                continue;
            }

            var d = number[i] - '0';
            if (count++ % 2 == 1)
            {
                d = d * 2 > 9 ? d * 2 - 9 : d * 2;
            }

            sum += d;
        }

        return count is >= 13 and <= 19 && sum % 10 == 0;
    }

    /// <summary>A literal every match of <paramref name="pattern"/> contains: absent, the pattern is not run.</summary>
    private static string? Anchor(Regex pattern)
    {
        var source = pattern.ToString();
        return source.StartsWith(@"\bname=", StringComparison.Ordinal) ? "name="
            : source.StartsWith('<') ? "<"
            : source.StartsWith(';') ? ";"
            : source.StartsWith(@"(?<=\s|^)--?", StringComparison.Ordinal) ? "-"
            : source.Contains(@"\s*:\s*", StringComparison.Ordinal) || source.Contains("[ \\t]*:", StringComparison.Ordinal) ? ":"
            : source.Contains("=", StringComparison.Ordinal) && !source.StartsWith(@"\b[a-z]", StringComparison.Ordinal) ? "="
            : null;
    }

    private string ReplaceGroups(Regex pattern, string text)
    {
        if (_anchors.TryGetValue(pattern, out var anchor) && anchor is not null && !text.Contains(anchor, StringComparison.OrdinalIgnoreCase))
        {
            return text;
        }

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
            return Markers.TimedOut;
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

                // Masked already (the writer's pass runs over texts the recorder masked): kept as it is.
                if (group.Length > 0 && !_replacement.AsSpan().StartsWith(group.ValueSpan, StringComparison.Ordinal))
                {
                    sb.Remove(group.Index, group.Length).Insert(group.Index, _replacement);
                }

                replaced = true;
                break;
            }

            if (!replaced && match.Groups.Count == 1)
            {
                sb.Remove(match.Index, match.Length).Insert(match.Index, _replacement);
            }
        }

        return sb.ToString();
    }
}

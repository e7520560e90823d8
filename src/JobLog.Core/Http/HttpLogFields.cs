using System.Text;
using JobLog.Redaction;

namespace JobLog.Http;

/// <summary>Field rules shared by inbound and outbound request logs (docs/architecture.md#redaction).</summary>
internal static class HttpLogFields
{
    /// <summary>Longest stored path (the column's size).</summary>
    public const int MaxPathLength = 2000;

    /// <summary>Longest stored host, slug, exception name.</summary>
    public const int MaxNameLength = LedgerModel.NameLength;

    /// <summary>Longest stored method.</summary>
    public const int MaxMethodLength = 16;

    /// <summary>The seed's <c>get_response_state</c>: 500+ ERROR, 400+ WARNING, else INFO.</summary>
    public static RequestLogStatus StatusOf(int code) => code switch
    {
        >= 500 => RequestLogStatus.Error,
        >= 400 => RequestLogStatus.Warning,
        _ => RequestLogStatus.Info,
    };

    public static string Name(string? text, int max = MaxNameLength) => Redactor.Truncate(Clean(text ?? ""), max);

    public static string Path(string? path) => Redactor.Truncate(Clean(path ?? ""), MaxPathLength);

    /// <summary>The exception's type name as stored in <c>ExceptionName</c>.</summary>
    public static string ExceptionName(Exception exception) => Name(exception.GetType().FullName ?? exception.GetType().Name);

    /// <summary>Parses a raw query string (<c>?a=1&amp;a=2&amp;b</c>) into names and values, keeping repeated names.</summary>
    public static List<KeyValuePair<string, IEnumerable<string?>>> ParseQuery(string? query)
    {
        var result = new List<KeyValuePair<string, IEnumerable<string?>>>();
        if (string.IsNullOrEmpty(query))
        {
            return result;
        }

        var groups = new Dictionary<string, List<string?>>(StringComparer.Ordinal);
        foreach (var pair in query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            var name = Unescape(equals < 0 ? pair : pair[..equals]);
            var value = equals < 0 ? "" : Unescape(pair[(equals + 1)..]);
            if (!groups.TryGetValue(name, out var values))
            {
                values = [];
                groups[name] = values;
                result.Add(new(name, values));
            }

            values.Add(value);
        }

        return result;
    }

    private static string Unescape(string text)
    {
        try
        {
            return Uri.UnescapeDataString(text.Replace('+', ' '));
        }
        catch (UriFormatException)
        {
            return text;
        }
    }

    /// <summary>Removes control characters (a path or a header can carry NUL and escapes).</summary>
    private static string Clean(string text)
    {
        var clean = true;
        foreach (var c in text)
        {
            if (char.IsControl(c))
            {
                clean = false;
                break;
            }
        }

        if (clean)
        {
            return text;
        }

        var sb = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            if (!char.IsControl(c))
            {
                sb.Append(c);
            }
        }

        return sb.ToString();
    }
}

using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using JobLog.Querying;

namespace JobLog.AspNetCore.Dashboard.Html;

/// <summary>How values read on the pages (and in the CLI's tables). Times are UTC.</summary>
internal static class Format
{
    private static readonly JsonWriterOptions s_indented = new() { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Time(DateTime? time) => LedgerFormat.Time(time);

    public static string Time(DateTimeOffset? time) => Time(time?.UtcDateTime);

    public static string Iso(DateTime time) => time.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    public static string Duration(double? seconds) => LedgerFormat.Duration(seconds);

    public static string Number(long value) => value.ToString("#,0", CultureInfo.InvariantCulture);

    public static string Ago(DateTime now, DateTime? then)
    {
        if (then is not { } t)
        {
            return "never";
        }

        return Ago((now - t).TotalSeconds);
    }

    /// <summary><paramref name="seconds"/> ago, in the largest whole unit (negative counts as 0).</summary>
    public static string Ago(double seconds)
    {
        var s = Math.Max(0, seconds);
        return s switch
        {
            < 60 => $"{(int)s} s ago",
            < 3600 => $"{(int)(s / 60)} min ago",
            < 86400 => $"{(int)(s / 3600)} h ago",
            _ => $"{(int)(s / 86400)} d ago",
        };
    }

    public static string State(TaskState state) => state.ToString().ToUpperInvariant();

    public static string State(TaskRunState state) => state.ToString().ToUpperInvariant();

    public static string State(RequestLogStatus status) => status.ToString().ToUpperInvariant();

    /// <summary>CSS class of a state badge.</summary>
    public static string StateClass(TaskState state) => "st-" + state.ToString().ToLowerInvariant();

    public static string StateClass(TaskRunState state) => "st-" + state.ToString().ToLowerInvariant();

    public static string StateClass(RequestLogStatus status) => "rs-" + status.ToString().ToLowerInvariant();

    public static string Outcome(bool? successful) => successful switch
    {
        true => "SUCCEEDED",
        false => "FAILED",
        null => "RUNNING",
    };

    public static string OutcomeClass(bool? successful) => successful switch
    {
        true => "st-succeeded",
        false => "st-failed",
        null => "st-active",
    };

    /// <summary>Eight hex digits that tell ids apart in a list: MassTransit's sequential ids share their first groups.</summary>
    public static string ShortId(Guid id)
    {
        var d = id.ToString("D");
        return string.Concat(d.AsSpan(19, 4), d.AsSpan(32, 4));
    }

    /// <summary>JSON re-indented for reading; anything else unchanged.</summary>
    public static string? Pretty(string? text)
    {
        if (string.IsNullOrWhiteSpace(text) || (text.TrimStart()[0] is not ('{' or '[')))
        {
            return text;
        }

        try
        {
            using var document = JsonDocument.Parse(text);
            using var buffer = new MemoryStream();
            using (var writer = new Utf8JsonWriter(buffer, s_indented))
            {
                document.WriteTo(writer);
            }

            return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
        }
        catch (JsonException)
        {
            return text;
        }
    }
}

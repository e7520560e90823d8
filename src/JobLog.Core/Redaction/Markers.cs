namespace JobLog.Redaction;

/// <summary>What is stored instead of a text that could not be masked or rendered: never the text itself.</summary>
internal static class Markers
{
    public const string TimedOut = "[hidden: redaction timed out]";

    public const string NotMasked = "[hidden: could not be masked]";

    public const string InvalidJsonRest = "[hidden: the rest is not valid JSON]";

    public const string Rejected = "[hidden: the database rejected this text]";

    public static string NotRendered(Exception ex) => $"[not rendered: {ex.GetType().Name}]";
}

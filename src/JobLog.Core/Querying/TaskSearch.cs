using System.Globalization;

namespace JobLog.Querying;

/// <summary>
/// What the task list's search box (<c>q</c>) asks for: always a case-insensitive substring of the task's Input,
/// TaskKwargs or a run's ErrorMessage; when the text is also an id, the tasks that carry that id. The semantics:
/// docs/search.md.
/// </summary>
/// <param name="Text">The text, matched as a substring.</param>
/// <param name="Id">
/// The text read as a GUID in any of .NET's formats (<c>D</c>, <c>N</c>, <c>B</c>, <c>P</c>, <c>X</c>, or
/// <c>urn:uuid:</c> before <c>D</c>): the task's id (its MessageId), CorrelationId, ConversationId, or one of its run ids.
/// </param>
/// <param name="TraceId">The text read as a W3C trace id (32 hex digits, lower-cased, or a whole <c>traceparent</c>).</param>
internal sealed record TaskSearch(string Text, Guid? Id, string? TraceId)
{
    /// <summary>The fewest characters the text indexes use; a shorter text is searched by scanning (docs/search.md).</summary>
    public const int IndexedLength = 3;

    private const string UrnPrefix = "urn:uuid:";
    private const int TraceIdLength = 32;

    /// <summary>Reads the search box.</summary>
    /// <param name="text">The trimmed, non-empty <c>q</c>.</param>
    public static TaskSearch Parse(string text)
    {
        var id = text.StartsWith(UrnPrefix, StringComparison.OrdinalIgnoreCase) ? text[UrnPrefix.Length..] : text;
        return new TaskSearch(text, Guid.TryParse(id, CultureInfo.InvariantCulture, out var guid) ? guid : null, Trace(text));
    }

    /// <summary>
    /// The part of the text a trigram index looks up when the whole text is longer (<c>LedgerQueries.TextMatches</c>):
    /// its longest run of letters and digits that has a digit (the distinctive part of an order number or an id:
    /// <c>0032dcd5</c> in <c>ord-0032dcd5-z</c>), else its longest run of letters and digits; at least three characters
    /// (a trigram), and null when no run has three or the run is the whole text.
    /// </summary>
    public string? Key
    {
        get
        {
            var key = Distinctive;
            return key is null || key.Length == Text.Length ? null : key;
        }
    }

    /// <summary>The fewest characters of <see cref="Distinctive"/> for <see cref="LooksRare"/>: a million values or more.</summary>
    public const int RareLength = 6;

    /// <summary>
    /// True when the text names a value few tasks carry: its <see cref="Distinctive"/> run has a digit and at least
    /// <see cref="RareLength"/> characters (an order number, a customer's or a document's number, a part of an id). The
    /// search checks only a few of the newest rows for such a text before its indexes (<c>LedgerQueries.RareSearchWindow</c>).
    /// A guess from the text alone, never from the rows: the results are the same either way, only the order of the steps differs.
    /// </summary>
    public bool LooksRare => Distinctive is { Length: >= RareLength } run && run.Any(char.IsAsciiDigit);

    /// <summary>
    /// The text's longest run of letters and digits that has a digit, else its longest run of letters and digits; at
    /// least <see cref="IndexedLength"/> characters, or null. It may be the whole text.
    /// </summary>
    private string? Distinctive
    {
        get
        {
            var runs = new List<string>();
            var start = -1;
            for (var i = 0; i <= Text.Length; i++)
            {
                var inRun = i < Text.Length && char.IsLetterOrDigit(Text[i]);
                if (inRun && start < 0)
                {
                    start = i;
                }
                else if (!inRun && start >= 0)
                {
                    runs.Add(Text[start..i]);
                    start = -1;
                }
            }

            return runs.Where(r => r.Length >= IndexedLength)
                .OrderByDescending(r => r.Any(char.IsAsciiDigit)).ThenByDescending(r => r.Length).FirstOrDefault();
        }
    }

    /// <summary>The number of characters (Unicode scalar values, as the trigram tokenizer counts them).</summary>
    public int Characters => Text.EnumerateRunes().Count();

    /// <summary>A trace id (32 hex digits, not all zero), or the trace id of a traceparent (<c>00-{trace}-{span}-{flags}</c>).</summary>
    private static string? Trace(string text)
    {
        var parts = text.Split('-');
        var candidate = parts.Length == 4 && parts[0].Length == 2 && parts[2].Length == 16 && parts[3].Length == 2 ? parts[1] : text;
        return candidate.Length == TraceIdLength && candidate.All(char.IsAsciiHexDigit) && candidate.Any(c => c != '0')
            ? candidate.ToLowerInvariant()
            : null;
    }
}

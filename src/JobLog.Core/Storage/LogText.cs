namespace JobLog.Storage;

/// <summary>
/// A log whose list has a free-text filter (<c>q</c>) over one column: the inbound and outbound requests' <c>Path</c>,
/// the commands' <c>Input</c>. Each database answers it from a trigram index of that column when the search index is on
/// (docs/search.md, "Requests and commands").
/// </summary>
/// <param name="Table">The log's table.</param>
/// <param name="Column">The searched column.</param>
/// <param name="Name">A short name: the SQLite watermark's column, and part of the index names.</param>
internal sealed record LogText(string Table, string Column, string Name)
{
    /// <summary>The inbound requests' path.</summary>
    public static readonly LogText InputRequests = new(LedgerModel.InputRequests, "Path", "InputRequests");

    /// <summary>The outbound requests' path.</summary>
    public static readonly LogText OutputRequests = new(LedgerModel.OutputRequests, "Path", "OutputRequests");

    /// <summary>The commands' arguments.</summary>
    public static readonly LogText Commands = new(LedgerModel.Commands, "Input", "Commands");

    /// <summary>Every searched log.</summary>
    public static readonly LogText[] All = [InputRequests, OutputRequests, Commands];
}

using System.Text.Json;
using JobLog.Querying;

namespace JobLog.AspNetCore.Dashboard;

/// <summary>How the JSON API writes: the ledger's JSON (<see cref="LedgerJson"/>), the same as the CLI's <c>--json</c>.</summary>
internal static class DashboardJson
{
    public static JsonSerializerOptions Options => LedgerJson.Options;
}

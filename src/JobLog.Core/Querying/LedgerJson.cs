using System.Text.Json;
using System.Text.Json.Serialization;

namespace JobLog.Querying;

/// <summary>
/// How the ledger's rows and documents are written as JSON, by the dashboard's API and the CLI alike: camelCase names,
/// states as lower-case names (never numbers).
/// </summary>
public static class LedgerJson
{
    /// <summary>The serializer options (read-only).</summary>
    public static JsonSerializerOptions Options { get; } = Create();

    private static JsonSerializerOptions Create()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase, allowIntegerValues: false) },
        };
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}

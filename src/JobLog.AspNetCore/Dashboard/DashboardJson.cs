using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace JobLog.AspNetCore.Dashboard;

/// <summary>How the JSON API writes: camelCase, states as lower-case names, no navigation back to a parent.</summary>
internal static class DashboardJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase, allowIntegerValues: false) },
        TypeInfoResolver = new DefaultJsonTypeInfoResolver { Modifiers = { LeaveOutNavigations } },
    };

    private static void LeaveOutNavigations(JsonTypeInfo info)
    {
        if (info.Kind != JsonTypeInfoKind.Object)
        {
            return;
        }

        for (var i = info.Properties.Count - 1; i >= 0; i--)
        {
            var name = info.Properties[i].Name;
            // The detail returns a task's runs beside it; a run's task is the detail itself; TaskId repeats Id.
            if ((info.Type == typeof(TaskLog) && name is "runs" or "taskId") || (info.Type == typeof(TaskRunLog) && name == "task"))
            {
                info.Properties.RemoveAt(i);
            }
        }
    }
}

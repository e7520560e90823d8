using System.Collections.Concurrent;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace JobLog.Redaction;

/// <summary>A message rendered for the ledger: masked and bounded.</summary>
internal readonly record struct RenderedMessage(string Input, string TaskArgs, string TaskKwargs);

/// <summary>Renders a message object as <c>Input</c>, <c>TaskArgs</c> and <c>TaskKwargs</c> (DESIGN §3).</summary>
internal sealed class MessageRenderer(Redactor redactor)
{
    private static readonly JsonSerializerOptions s_serializer = new()
    {
        MaxDepth = 64,
        ReferenceHandler = System.Text.Json.Serialization.ReferenceHandler.IgnoreCycles,
    };

    private static readonly ConcurrentDictionary<Type, string[]?> s_positional = new();

    public RenderedMessage Render(object? message)
    {
        if (message is null)
        {
            return new RenderedMessage("", "[]", "{}");
        }

        JsonNode? node;
        try
        {
            node = JsonSerializer.SerializeToNode(message, message.GetType(), s_serializer);
        }
        catch (Exception ex) when (ex is NotSupportedException or JsonException or InvalidOperationException or ArgumentException)
        {
            var marker = $"[not serializable: {ex.GetType().Name}]";
            return new RenderedMessage(marker, "[]", JsonSerializer.Serialize(new { error = marker }));
        }

        redactor.Mask(node);
        var kwargs = redactor.JsonText(node?.DeepClone());
        var args = RenderArgs(message.GetType(), node);
        var input = RenderInput(node);
        return new RenderedMessage(input, args, kwargs);
    }

    private string RenderArgs(Type type, JsonNode? node)
    {
        var names = s_positional.GetOrAdd(type, PositionalParameters);
        if (names is null || node is not JsonObject obj)
        {
            return "[]";
        }

        var array = new JsonArray();
        foreach (var name in names)
        {
            var key = obj.Select(p => p.Key).FirstOrDefault(k => string.Equals(k, name, StringComparison.OrdinalIgnoreCase));
            array.Add(key is null ? null : obj[key]?.DeepClone());
        }

        return redactor.JsonText(array);
    }

    private string RenderInput(JsonNode? node)
    {
        var sb = new StringBuilder();
        if (node is JsonObject obj)
        {
            foreach (var (key, value) in obj)
            {
                if (sb.Length > redactor.MaxLength)
                {
                    break;
                }

                if (sb.Length > 0)
                {
                    sb.Append(", ");
                }

                sb.Append(key).Append('=');
                if (value is JsonValue v && v.TryGetValue<string>(out var s))
                {
                    sb.Append(Redactor.Truncate(s, 250));
                }
                else
                {
                    sb.Append(Redactor.Truncate(value?.ToJsonString() ?? "null", 250));
                }
            }
        }
        else
        {
            sb.Append(node?.ToJsonString() ?? "null");
        }

        return redactor.Bound(sb.Replace('\n', ' ').Replace('\r', ' ').ToString());
    }

    /// <summary>A positional record's primary-constructor parameter names, else null.</summary>
    private static string[]? PositionalParameters(Type type)
    {
        var isRecord = type.GetMethod("<Clone>$", BindingFlags.Public | BindingFlags.Instance) is not null;
        if (!isRecord)
        {
            return null;
        }

        var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var ctor = type.GetConstructors()
            .Where(c => c.GetParameters().Length > 0 && c.GetParameters().All(p => p.Name is not null && properties.Contains(p.Name)))
            .Where(c => !(c.GetParameters().Length == 1 && c.GetParameters()[0].ParameterType == type))
            .OrderByDescending(c => c.GetParameters().Length)
            .FirstOrDefault();
        return ctor?.GetParameters().Select(p => p.Name!).ToArray();
    }
}

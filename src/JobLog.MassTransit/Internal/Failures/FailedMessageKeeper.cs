using System.Globalization;
using System.Text;
using JobLog.Failures;
using JobLog.Redaction;
using JobLog.Storage;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace JobLog.MassTransit.Internal.Failures;

/// <summary>On a receive context: what became of the kept copy of its failed message (read by the error-store filters).</summary>
internal sealed class KeptFailure
{
    /// <summary>The copy (or, for a message too large, its metadata) is committed.</summary>
    public bool Committed { get; set; }

    /// <summary>The body is in the copy: the ledger can retry it.</summary>
    public bool BodyKept { get; set; }
}

/// <summary>
/// Keeps the transport message of a delivery that failed for good (docs/architecture.md#failures): body and headers,
/// protected, in one small statement of its own (not through the hot-path writer: failures are rare). Never throws
/// into the consumer's path; the outcome is left on the receive context for the error-store filters.
/// </summary>
internal sealed class FailedMessageKeeper(
    JobLogContextFactory contexts, KeptMessageCodec codec, Redactor redactor, FailureOptions options, TimeProvider time, ILogger logger)
{
    public static FailedMessageKeeper? Create(IServiceProvider provider, JobLogOptions options) =>
        options.Failures.KeepMessages
            ? new FailedMessageKeeper(
                provider.GetRequiredService<JobLogContextFactory>(),
                provider.GetRequiredService<KeptMessageCodec>(),
                provider.GetRequiredService<Redactor>(),
                options.Failures,
                provider.GetRequiredService<TimeProvider>(),
                provider.GetRequiredService<ILoggerFactory>().CreateLogger("JobLog.MassTransit.Failures"))
            : null;

    /// <param name="context">The failed delivery.</param>
    /// <param name="exception">Why it failed.</param>
    /// <param name="failed">The failed runs: one copy each (a task failing at two consumers keeps both).</param>
    public async Task KeepAsync(ConsumeContext context, Exception exception, IReadOnlyList<(Guid RunId, Guid TaskId, string Consumer)> failed)
    {
        if (failed.Count == 0)
        {
            return;
        }

        var receive = context.ReceiveContext;
        var outcome = receive.GetOrAddPayload(() => new KeptFailure());
        try
        {
            var body = receive.Body.GetBytes();
            var tooLarge = body.Length > options.MaxKeptMessageSize;
            var sealedCopy = tooLarge ? null : codec.Protect(new KeptMessageContent(Headers(receive), body));
            var now = time.GetUtcNow().UtcDateTime;
            var db = contexts.Create();
            await using (db.ConfigureAwait(false))
            {
                foreach (var (runId, taskId, consumer) in failed)
                {
                    db.KeptMessages.Add(new KeptMessageLog
                    {
                        Id = runId,
                        TaskId = taskId,
                        ConsumerType = Bound(consumer, LedgerModel.NameLength)!,
                        InputAddress = receive.InputAddress.ToString(),
                        ContentType = Bound(receive.ContentType?.ToString(), LedgerModel.NameLength),
                        ExceptionType = Bound(exception.GetType().FullName, LedgerModel.NameLength),
                        // In clear, so masked like the run's error: the exception's message may quote the body.
                        ExceptionMessage = redactor.Stored(exception.Message, StoredTextKind.Free, 4000),
                        KeptAt = now,
                        BodyLength = body.Length,
                        Protected = sealedCopy,
                        TooLarge = tooLarge,
                    });
                }

                await db.SaveChangesAsync(CancellationToken.None).ConfigureAwait(false);
            }

            outcome.Committed = true;
            outcome.BodyKept = !tooLarge;
        }
        catch (Exception ex)
        {
            Log.KeepFailed(logger, ex, failed[0].TaskId);
        }
    }

    /// <summary>
    /// The transport headers as text. An AMQP array or table (a list or dictionary) is its JSON text, its strings read
    /// from their bytes: as <c>ToString()</c> it was the .NET type's name, and a retry re-sent that.
    /// </summary>
    internal static Dictionary<string, string> Headers(ReceiveContext receive)
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in receive.TransportHeaders.GetAll())
        {
            var text = value switch
            {
                null => null,
                System.Collections.IDictionary or System.Collections.IList and not byte[] => JsonText(value),
                _ => Text(value),
            };
            if (text is not null)
            {
                headers[key] = text;
            }
        }

        return headers;
    }

    /// <summary>An array or table as JSON (past <see cref="MaxHeaderDepth"/> levels, a sender's nesting, the rest as text).</summary>
    private static string JsonText(object value)
    {
        try
        {
            return Json(value, 0)!.ToJsonString();
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or System.Text.Json.JsonException)
        {
            return Text(value);
        }
    }

    private static string Text(object value) => value switch
    {
        string s => s,
        byte[] bytes => Encoding.UTF8.GetString(bytes),
        DateTime d => d.ToString("O", CultureInfo.InvariantCulture),
        DateTimeOffset d => d.ToString("O", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private const int MaxHeaderDepth = 32;

    /// <summary>A header value as JSON: tables as objects, arrays as arrays, numbers and booleans as such, the rest as text.</summary>
    private static System.Text.Json.Nodes.JsonNode? Json(object? value, int depth) => value switch
    {
        null => null,
        _ when depth > MaxHeaderDepth => Text(value),
        bool b => b,
        long or int or short or byte or sbyte or ushort or uint or ulong or decimal => Convert.ToDecimal(value, CultureInfo.InvariantCulture),
        double or float when double.IsFinite(Convert.ToDouble(value, CultureInfo.InvariantCulture)) => Convert.ToDouble(value, CultureInfo.InvariantCulture),
        System.Collections.IDictionary table => new System.Text.Json.Nodes.JsonObject(
            table.Keys.Cast<object>().Select(k => KeyValuePair.Create(Text(k), Json(table[k], depth + 1)))),
        byte[] bytes => Text(bytes),
        System.Collections.IList list => new System.Text.Json.Nodes.JsonArray([.. list.Cast<object?>().Select(v => Json(v, depth + 1))]),
        _ => Text(value),
    };

    private static string? Bound(string? text, int length) => text is null || text.Length <= length ? text : text[..length];
}

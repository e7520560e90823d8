using System.Globalization;

namespace JobLog.Bench.Scale;

/// <summary>
/// The generated ledger of the scale benchmark, deterministic (seeded), newest last. Tasks are spread evenly over
/// <c>days</c> ending ten minutes ago; 50 task names with a skewed mix (a few names carry most of the traffic), 10 queues;
/// states: one task in <see cref="Sparsity"/> stale WAITING/ACTIVE for the sweeper (by default 100,000 or a tenth of
/// the tasks, whichever is smaller), 1% FAILED after two RETRIED runs, 5% SUCCEEDED after one RETRIED run, 0.5%
/// EXPIRED, the rest SUCCEEDED with one run. A quarter as many inbound requests (5% 5xx, 10% 4xx) and a tenth as many
/// commands (3% failed).
/// </summary>
internal sealed class ScaleData(int tasks, int days, DateTime now, int? sparsity = null)
{
    public const string RareTermFormat = "ord-{0:x8}-z";
    public const string CommonTerm = "EUR";

    /// <summary>
    /// 200 characters whose every trigram is in most tasks' input (<c>Currency=EUR, </c> over and over), in an order no
    /// task has: the search index's costliest phrase that finds nothing (session 43's hostile q).
    /// </summary>
    public static readonly string CommonTrigrams = string.Concat(Enumerable.Repeat("Currency=EUR, ", 15))[..200];

    /// <summary>
    /// 200 characters of a request path over and over (<c>/api/orders/api/orders…</c>): its key (<c>orders</c>) is in a third
    /// of the paths, its whole text has a trigram (<c>s/a</c>) no path has (session 44's hostile q on requests).
    /// </summary>
    public static readonly string RepeatedPath = string.Concat(Enumerable.Repeat("/api/orders", 19))[..200];

    /// <summary>
    /// 200 characters of a command's argument over and over (<c>--batch --batch …</c>): its key (<c>batch</c>) is in every
    /// command's arguments, its whole text has a trigram (<c>h -</c>) none has (session 44's hostile q on commands).
    /// </summary>
    public static readonly string RepeatedArgument = string.Concat(Enumerable.Repeat("--batch ", 25))[..200];

    /// <summary>
    /// A queue only the runs of <see cref="RareQueueTasks"/> name (a subscriber that consumed a handful of events): the
    /// queue filter's rare case (docs/scale.md "Session 11 (pgret)").
    /// </summary>
    public const string RareQueue = "queue-rare";

    /// <summary>The tasks whose runs were consumed from <see cref="RareQueue"/>: five, spread over the ledger.</summary>
    public IEnumerable<int> RareQueueTasks => Enumerable.Range(0, 5).Select(k => k * (tasks / 5) + tasks / 10 + 1);

    public static readonly string[] TaskColumns =
    [
        "Id", "Name", "QueueName", "Input", "TaskArgs", "TaskKwargs", "DispatchedAt", "EstimatedTimeOfFirstArrival", "Stale",
        "IsSetAsStale", "State", "Start", "Stop", "CorrelationId", "ConversationId", "TraceId", "SourceAddress", "Host",
        "IsInternal", "ErrorMessage",
    ];

    public static readonly string[] RunColumns =
    [
        "Id", "TaskId", "Name", "QueueName", "ConsumerType", "Input", "TaskArgs", "TaskKwargs", "Start", "Stop", "State",
        "ErrorMessage", "Retries", "WaitingTime", "Redelivered", "Host",
    ];

    public static readonly string[] RequestColumns =
    [
        "Id", "Host", "Method", "Path", "Queries", "IsSecure", "Slug", "RequestTimestamp", "ResponseTimestamp", "ResponseCode",
        "Status", "ExceptionName", "UserId", "Ip", "Type",
    ];

    public static readonly string[] CommandColumns =
    [
        "Id", "Name", "Input", "ExecutedFromCommandLine", "Start", "Stop", "IsSuccessful", "ExitCode", "Host", "ErrorMessage",
    ];

    private static readonly string[] Errors =
    [
        "System.InvalidOperationException: Card declined.\n   at ChargeCardConsumer.Consume(ConsumeContext`1 context)",
        "System.TimeoutException: The payment gateway did not answer within 30 s.\n   at PaymentClient.ChargeAsync()",
        "Npgsql.PostgresException: 40001: could not serialize access due to concurrent update",
        "System.Net.Http.HttpRequestException: Connection refused (inventory:8080)",
    ];

    private static readonly string[] Paths = ["/api/orders", "/api/orders/{id}", "/api/customers/{id}", "/api/cart", "/health", "/api/payments"];

    public int Tasks => tasks;

    /// <summary>
    /// One task in this many is a stale task for the sweeper: by default the spacing that makes 100,000 of them (or a
    /// tenth of the tasks). A spread backlog's cost a task follows it, not the ledger's size: the index leaves and heap
    /// pages a swept task shares with other swept tasks (docs/scale.md, "Session 28 (scale)"), so a 1 M ledger with
    /// <c>sparsity</c> 100 sweeps its 10,000 stale tasks at a 10 M ledger's cost a task.
    /// </summary>
    public int Sparsity { get; } = sparsity ?? tasks / Math.Min(100_000, tasks / 10);

    /// <summary>The stale tasks: those whose index is 3 past a multiple of <see cref="Sparsity"/>.</summary>
    public int Stale => tasks > 3 ? (tasks - 4) / Sparsity + 1 : 0;

    public int Requests => tasks / 4;

    public int Commands => Math.Max(10, tasks / 10);

    public DateTime First => Last - TimeSpan.FromDays(days);

    public DateTime Last => now.AddMinutes(-10);

    /// <summary>
    /// The id of task <paramref name="i"/> (deterministic, so runs can name their task in a second pass), laid out as
    /// MassTransit's <c>NewId.NextGuid()</c>: the top 48 bits of its dispatch time's ticks in the last six bytes (so a
    /// partitioned ledger files it under its day; PostgreSQL orders uuids by their first bytes, so inserts stay scattered
    /// over the primary key as real message ids do).
    /// </summary>
    public Guid TaskId(long i)
    {
        Span<byte> bytes = stackalloc byte[16];
        Id(i, 1).TryWriteBytes(bytes, bigEndian: true, out _);
        var ticks48 = DispatchedAt(i, tasks).Ticks >> 16;
        for (var b = 15; b >= 10; b--)
        {
            bytes[b] = (byte)ticks48;
            ticks48 >>= 8;
        }

        return new Guid(bytes, bigEndian: true);
    }

    public static string TaskName(int k) => "Orders.Step" + k.ToString("00", CultureInfo.InvariantCulture);

    public static string RareTerm(int i) => string.Format(CultureInfo.InvariantCulture, RareTermFormat, i);

    public DateTime DispatchedAt(long i, long n) => First + TimeSpan.FromTicks((long)(i * ((Last - First).Ticks / (double)n)));

    public TaskState StateOf(int i) =>
        i % Sparsity == 3 ? (i % 2 == 0 ? TaskState.Waiting : TaskState.Active)
        : (i % 1000) switch
        {
            < 10 => TaskState.Failed,
            < 60 => TaskState.Retried, // generated as SUCCEEDED after one RETRIED run
            < 65 => TaskState.Expired,
            _ => TaskState.Succeeded,
        };

    /// <summary>Task <paramref name="i"/> and its runs, in table column order.</summary>
    public (object?[] Task, List<object?[]> Runs) Task(int i)
    {
        var rng = new Random(i);
        var id = TaskId(i);
        var at = DispatchedAt(i, tasks);
        var state = StateOf(i);
        var k = (int)(50 * Math.Pow(rng.NextDouble(), 3)); // skewed: Step00 is the busiest
        var name = TaskName(k);
        var queue = "queue-" + (k % 10).ToString(CultureInfo.InvariantCulture);
        var runQueue = RareQueueTasks.Contains(i) ? RareQueue : queue;
        var currency = rng.Next(10) < 6 ? "EUR" : "USD";
        var customer = rng.Next(1, 200_000);
        var amount = (rng.Next(100, 100_000) / 100.0).ToString("0.00", CultureInfo.InvariantCulture);
        var reference = RareTerm(i);
        var input = $"CustomerId={customer}, Amount={amount}, Currency={currency}, Reference={reference}";
        var args = $"[{customer},{amount},\"{currency}\",\"{reference}\"]";
        var kwargs = $"{{\"CustomerId\":{customer},\"Amount\":{amount},\"Currency\":\"{currency}\",\"Reference\":\"{reference}\"}}";
        var runs = new List<object?[]>();
        var stale = state is TaskState.Waiting or TaskState.Active ? at.AddMinutes(5) : at.AddHours(1);
        DateTime? start = state == TaskState.Waiting ? null : at.AddMilliseconds(rng.Next(5, 500));
        var cursor = start ?? at;
        var tries = state switch { TaskState.Failed => 3, TaskState.Retried => 2, TaskState.Waiting or TaskState.Expired => 0, _ => 1 };
        string? error = null;
        for (var r = 0; r < tries; r++)
        {
            var runStart = cursor;
            var last = r == tries - 1;
            var runState = !last ? TaskRunState.Retried : state switch
            {
                TaskState.Active => TaskRunState.Active,
                TaskState.Failed => TaskRunState.Failed,
                _ => TaskRunState.Succeeded,
            };
            DateTime? runStop = runState == TaskRunState.Active ? null : runStart.AddMilliseconds(rng.Next(20, 3000));
            error = runState is TaskRunState.Failed or TaskRunState.Retried ? Errors[rng.Next(Errors.Length)] : null;
            runs.Add([Id(i, 2 + r), id, name, runQueue, name + "Consumer", input, args, kwargs, runStart, runStop, (int)runState, error, r, 0.01, false, "bench-host"]);
            cursor = (runStop ?? runStart).AddMilliseconds(200);
        }

        var finalState = state == TaskState.Retried ? TaskState.Succeeded : state;
        DateTime? stop = finalState switch
        {
            TaskState.Succeeded or TaskState.Failed => cursor.AddMilliseconds(-200),
            TaskState.Expired => stale,
            _ => null,
        };
        object?[] task =
        [
            id, name, queue, input, args, kwargs, at, at, stale, false, (int)finalState, start, stop, Id(i, 9), Id(i, 10),
            Convert.ToHexStringLower(Id(i, 11).ToByteArray()), "rabbitmq://localhost/" + queue, "bench-host", false,
            finalState == TaskState.Failed ? error : null,
        ];
        return (task, runs);
    }

    public object?[] Request(int i)
    {
        var rng = new Random(~i);
        var at = DispatchedAt(i, Requests);
        var path = Paths[rng.Next(Paths.Length)];
        var roll = rng.Next(100);
        var (code, status, exception) = roll switch
        {
            < 5 => (500, 40, "System.InvalidOperationException"),
            < 15 => (404, 30, (string?)null),
            _ => (200, 20, (string?)null),
        };
        return
        [
            Dated(Id(i, 20), at), "shop.example", rng.Next(4) == 0 ? "POST" : "GET", path.Replace("{id}", rng.Next(1, 100_000).ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal),
            null, true, path, at, at.AddMilliseconds(rng.Next(2, 800)), code, status, exception, "user" + rng.Next(1, 5000).ToString(CultureInfo.InvariantCulture),
            "10.0." + rng.Next(0, 255).ToString(CultureInfo.InvariantCulture) + "." + rng.Next(1, 255).ToString(CultureInfo.InvariantCulture), 1,
        ];
    }

    public object?[] Command(int i)
    {
        var rng = new Random(i ^ 0x5a5a5a);
        var at = DispatchedAt(i, Commands);
        var ok = rng.Next(100) >= 3;
        var name = "import-" + (i % 8).ToString(CultureInfo.InvariantCulture);
        return
        [
            Dated(Id(i, 30), at), name, "--batch " + i.ToString(CultureInfo.InvariantCulture), true, at, at.AddSeconds(rng.Next(1, 120)), ok, ok ? 0 : 1,
            "bench-host", ok ? null : "System.IO.IOException: the import file is locked",
        ];
    }

    /// <summary>
    /// <paramref name="id"/> as a UUID version 7 of <paramref name="at"/> (its first 48 bits the Unix milliseconds), as
    /// JobLog makes the ids of requests and commands (<c>Guid.CreateVersion7</c> at their start): a partitioned ledger
    /// files them under their day.
    /// </summary>
    private static Guid Dated(Guid id, DateTime at)
    {
        Span<byte> bytes = stackalloc byte[16];
        id.TryWriteBytes(bytes, bigEndian: true, out _);
        var ms = (long)(at - DateTime.UnixEpoch).TotalMilliseconds;
        for (var b = 5; b >= 0; b--)
        {
            bytes[b] = (byte)ms;
            ms >>= 8;
        }

        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x70);
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80);
        return new Guid(bytes, bigEndian: true);
    }

    private static Guid Id(long i, int kind)
    {
        Span<byte> bytes = stackalloc byte[16];
        BitConverter.TryWriteBytes(bytes, i * 131 + kind);
        BitConverter.TryWriteBytes(bytes[8..], (i * 2654435761L) ^ ((long)kind << 56));
        bytes[7] = (byte)((bytes[7] & 0x0F) | 0x40);
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80);
        return new Guid(bytes);
    }
}

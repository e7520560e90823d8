using System.Data.Common;
using System.Globalization;
using JobLog.Storage;

namespace JobLog.Scheduling;

/// <summary>A message a dispatcher claimed and now sends.</summary>
internal sealed record ClaimedMessage(
    Guid Id,
    Guid? MessageId,
    string Destination,
    DateTime ScheduledTime,
    string ContentType,
    byte[] Body,
    int Attempts);

/// <summary>What a cancellation found.</summary>
internal enum CancelOutcome
{
    /// <summary>The message was pending: it will never be sent; its task is EXPIRED.</summary>
    Cancelled,

    /// <summary>The cancellation came before the message was stored: a tombstone keeps it from being stored later.</summary>
    CancelledBeforeStored,

    /// <summary>Too late: the message is being sent or was sent, or was already cancelled.</summary>
    NotPending,
}

/// <summary>
/// The scheduler's table. Unlike the ledger's records, these writes are synchronous: the scheduler acknowledges a
/// <c>ScheduleMessage</c> only once it is stored, and marks a message sent only after the broker confirmed it.
/// Claims are leases: <c>FOR UPDATE SKIP LOCKED</c> on PostgreSQL, SQLite's single writer otherwise; a claim whose
/// lease ran out (its dispatcher died) can be taken by any dispatcher.
/// </summary>
internal sealed class ScheduledMessageStore(JobLogContextFactory contexts, LedgerSchema schema)
{
    /// <summary>Whether the ledger is opened read-only: nothing can be claimed or marked sent there, and the dispatcher does not run.</summary>
    public bool ReadOnly => contexts.ReadOnly;

    private const string S = "\"" + LedgerModel.ScheduledMessages + "\"";
    private const string T = "\"" + LedgerModel.Tasks + "\"";
    private const int Pending = (int)ScheduledMessageState.Pending;
    private const int Dispatching = (int)ScheduledMessageState.Dispatching;
    private const int Sent = (int)ScheduledMessageState.Sent;
    private const int Cancelled = (int)ScheduledMessageState.Cancelled;

    private readonly LedgerDatabase _database = contexts.Database;

    // A tombstone left by an early cancellation learns which message it stopped, so that its task can be expired.
    private readonly string _add = contexts.Database.Upsert(new UpsertStatement(
        S,
        [
            ("Id", "@p0"), ("MessageId", "@p1"), ("MessageType", "@p2"), ("Destination", "@p3"), ("ScheduledTime", "@p4"),
            ("ContentType", "@p5"), ("Body", "@p6"), ("State", $"{Pending}"), ("CreatedAt", "@p7"), ("Attempts", "0"), ("Host", "@p8"),
        ],
        [("MessageId", null), ("MessageType", null), ("Destination", null), ("ScheduledTime", null)],
        Guard: $"{S}.\"State\" = {Cancelled} AND {S}.\"MessageId\" IS NULL",
        Returning: "\"State\""));

    private readonly string _tombstone = contexts.Database.Upsert(new UpsertStatement(
        S,
        [
            ("Id", "@p0"), ("Destination", "''"), ("ScheduledTime", "@p1"), ("ContentType", "''"), ("State", $"{Cancelled}"),
            ("CreatedAt", "@p1"), ("CancelledAt", "@p1"), ("Attempts", "0"), ("Host", "@p2"),
        ],
        []));

    // Creates the task when the producer's record has not arrived yet; the producer's later upsert keeps the state.
    // Only a task that never ran (WAITING) is expired, and IsSetAsStale pins EXPIRED for every later derivation.
    private readonly string _expireTask = contexts.Database.Upsert(new UpsertStatement(
        T,
        [
            ("Id", "@p0"), ("Name", "@p1"), ("QueueName", "@p2"), ("DispatchedAt", "@p3"), ("EstimatedTimeOfFirstArrival", "@p4"),
            ("IsSetAsStale", "TRUE"), ("State", $"{(int)TaskState.Expired}"), ("Stop", "@p5"), ("ErrorMessage", "@p6"),
        ],
        [("IsSetAsStale", "TRUE"), ("State", $"{(int)TaskState.Expired}"), ("Stop", null), ("ErrorMessage", null)],
        Guard: $"{T}.\"State\" = {(int)TaskState.Waiting}"));

    public LedgerProvider Provider => contexts.Provider;

    /// <summary>Migrates the schema when needed (once per process); retries while the database is down.</summary>
    public Task EnsureReadyAsync(CancellationToken cancellationToken) => schema.EnsureReadyAsync(cancellationToken);

    /// <summary>
    /// Stores a message to send later. Idempotent per <see cref="ScheduledMessageLog.Id"/> (a redelivered
    /// <c>ScheduleMessage</c> stores nothing twice).
    /// </summary>
    /// <returns>
    /// <see cref="ScheduledMessageState.Pending"/> when stored; <see cref="ScheduledMessageState.Cancelled"/> when a
    /// cancellation arrived first (the message is never sent); null when it was stored before.
    /// </returns>
    public async Task<ScheduledMessageState?> AddAsync(ScheduledMessageLog message, CancellationToken cancellationToken)
    {
        await schema.TryMigrateAsync(cancellationToken).ConfigureAwait(false);
        await using var executor = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = Command(executor.Connection, null,
            _add,
            message.Id, message.MessageId, message.MessageType, message.Destination, message.ScheduledTime, message.ContentType,
            message.Body, message.CreatedAt, message.Host);
        var state = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return state is null or DBNull ? null : (ScheduledMessageState)Convert.ToInt32(state, CultureInfo.InvariantCulture);
    }

    /// <summary>The state and scheduled time of the stored message <paramref name="id"/>, or null when there is none.</summary>
    public async Task<(ScheduledMessageState State, DateTime ScheduledTime)?> HeldAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var executor = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = Command(executor.Connection, null, $"SELECT \"State\", \"ScheduledTime\" FROM {S} WHERE \"Id\" = @p0", id);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? ((ScheduledMessageState)Convert.ToInt32(reader.GetValue(0), CultureInfo.InvariantCulture), ReadDateTime(reader, 1))
            : null;
    }

    /// <summary>
    /// Sets the ETA of the task <paramref name="taskId"/>, while it waits, to <paramref name="eta"/>: the time of the copy
    /// the scheduler holds under its MessageId, which a second copy's dispatch record (the same MessageId deferred again)
    /// had replaced.
    /// </summary>
    /// <returns>True when the task was there and waiting.</returns>
    public async Task<bool> ShowHeldEtaAsync(Guid taskId, DateTime eta, CancellationToken cancellationToken)
    {
        await using var executor = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = Command(executor.Connection, null,
            $"UPDATE {T} SET \"EstimatedTimeOfFirstArrival\" = @p1 WHERE \"Id\" = @p0 AND \"State\" = {(int)TaskState.Waiting}",
            taskId, eta);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }

    /// <summary>
    /// Cancels a pending message (<c>CancelScheduledMessage</c>) and, in the same transaction, sets its task EXPIRED
    /// with <paramref name="reason"/>: a cancelled task never runs, and EXPIRED is the state of a task that will not run
    /// (docs/architecture.md#scheduler). A cancellation that arrives before its message leaves a tombstone.
    /// </summary>
    public async Task<CancelOutcome> CancelAsync(Guid tokenId, DateTime now, string host, Func<DateTime, string> reason, CancellationToken cancellationToken)
    {
        await schema.TryMigrateAsync(cancellationToken).ConfigureAwait(false);
        await using var executor = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await executor.Connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);

        // The tombstone first: were the message inserted by a concurrent ScheduleMessage between an UPDATE that did not
        // see it and this INSERT, the INSERT would find it and do nothing, and the message would be sent. Inserted
        // first, it either stands (the message is not stored yet; AddAsync meets it) or waits for the concurrent insert
        // and finds its row, which the UPDATE below then sees (each statement of a READ COMMITTED transaction sees
        // what was committed before it began; SQLite has one writer).
        await using (var tombstone = Command(executor.Connection, transaction, _tombstone, tokenId, now, host))
        {
            if (await tombstone.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1)
            {
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                return CancelOutcome.CancelledBeforeStored;
            }
        }

        (Guid? MessageId, string? MessageType, string Destination, DateTime ScheduledTime, DateTime CreatedAt)? cancelled = null;
        await using (var update = Command(executor.Connection, transaction,
            $"UPDATE {S} SET \"State\" = {Cancelled}, \"CancelledAt\" = @p1, \"Body\" = NULL WHERE \"Id\" = @p0 AND \"State\" = {Pending} " +
            "RETURNING \"MessageId\", \"MessageType\", \"Destination\", \"ScheduledTime\", \"CreatedAt\"",
            tokenId, now))
        {
            await using var reader = await update.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                cancelled = (ReadNullableGuid(reader, 0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.GetString(2),
                    ReadDateTime(reader, 3), ReadDateTime(reader, 4));
            }
        }

        var outcome = CancelOutcome.NotPending;
        if (cancelled is { } row)
        {
            if (row.MessageId is { } messageId)
            {
                await ExpireTaskAsync(executor.Connection, transaction, messageId, row.MessageType, row.Destination, row.CreatedAt,
                    row.ScheduledTime, now, reason(row.ScheduledTime), cancellationToken).ConfigureAwait(false);
            }

            outcome = CancelOutcome.Cancelled;
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return outcome;
    }

    /// <summary>Sets the task of a message that was cancelled before it was stored (see <see cref="AddAsync"/>).</summary>
    public async Task ExpireCancelledTaskAsync(ScheduledMessageLog message, DateTime now, string reason, CancellationToken cancellationToken)
    {
        if (message.MessageId is not { } messageId)
        {
            return;
        }

        await using var executor = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await ExpireTaskAsync(executor.Connection, null, messageId, message.MessageType, message.Destination, message.CreatedAt,
            message.ScheduledTime, now, reason, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Claims up to <paramref name="max"/> messages that are due (or whose previous claim ran out) for
    /// <paramref name="lease"/>. Concurrent dispatchers never claim the same message.
    /// </summary>
    public Task<IReadOnlyList<ClaimedMessage>> ClaimDueAsync(Guid claimToken, DateTime now, TimeSpan lease, int max, CancellationToken cancellationToken) =>
        ClaimDueAsync(claimToken, now, lease, max, null, cancellationToken);

    /// <summary>
    /// As <see cref="ClaimDueAsync(Guid, DateTime, TimeSpan, int, CancellationToken)"/>, only messages this process can
    /// send: those whose destination starts with one of <paramref name="brokers"/> (the host addresses of its buses,
    /// <c>rabbitmq://host/vhost/</c>, compared without case), or is not an absolute broker address (<c>queue:name</c>).
    /// A message for a broker none of its buses reaches is left to a process that has one. Null or empty: every message.
    /// </summary>
    public async Task<IReadOnlyList<ClaimedMessage>> ClaimDueAsync(
        Guid claimToken, DateTime now, TimeSpan lease, int max, IReadOnlyList<string>? brokers, CancellationToken cancellationToken)
    {
        await using var executor = await OpenAsync(cancellationToken, pooled: false).ConfigureAwait(false);
        object?[] values = [claimToken, now + lease, now, max];
        await using var command = Command(executor.Connection, null,
            $"UPDATE {S} SET \"State\" = {Dispatching}, \"ClaimToken\" = @p0, \"ClaimedUntil\" = @p1 WHERE \"Id\" IN (" +
            $"SELECT \"Id\" FROM {S} WHERE ((\"State\" = {Pending} AND \"ScheduledTime\" <= @p2) OR (\"State\" = {Dispatching} AND \"ClaimedUntil\" <= @p2))" +
            Routable(brokers, ref values) +
            $" ORDER BY \"ScheduledTime\" LIMIT @p3{_database.SkipLocked}) " +
            "RETURNING \"Id\", \"MessageId\", \"Destination\", \"ScheduledTime\", \"ContentType\", \"Body\", \"Attempts\"",
            values);
        var claimed = new List<ClaimedMessage>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            claimed.Add(new ClaimedMessage(
                ReadGuid(reader, 0), ReadNullableGuid(reader, 1), reader.GetString(2), ReadDateTime(reader, 3), reader.GetString(4),
                reader.IsDBNull(5) ? [] : reader.GetFieldValue<byte[]>(5), reader.GetInt32(6)));
        }

        claimed.Sort((a, b) => a.ScheduledTime.CompareTo(b.ScheduledTime));
        return claimed;
    }

    /// <summary>Marks claimed messages sent. Only the claim's holder can.</summary>
    /// <returns>How many were marked (fewer when the lease ran out and another dispatcher took some).</returns>
    public async Task<int> MarkSentAsync(Guid claimToken, IReadOnlyCollection<Guid> ids, DateTime now, string sentBy, CancellationToken cancellationToken)
    {
        if (ids.Count == 0)
        {
            return 0;
        }

        await using var executor = await OpenAsync(cancellationToken, pooled: false).ConfigureAwait(false);
        await using var command = Command(executor.Connection, null,
            $"UPDATE {S} SET \"State\" = {Sent}, \"SentAt\" = @p1, \"SentBy\" = @p2, \"Body\" = NULL, \"ClaimToken\" = NULL, " +
            $"\"ClaimedUntil\" = NULL, \"LastError\" = NULL, \"Attempts\" = \"Attempts\" + 1 " +
            $"WHERE {_database.InIdList("\"Id\"", "@p0")} AND \"ClaimToken\" = @p3",
            _database.IdList(ids), now, sentBy, claimToken);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A send failed: the message stays claimed by nobody until <paramref name="retryAt"/>, then any dispatcher retries.</summary>
    public async Task RetryLaterAsync(Guid claimToken, Guid id, DateTime retryAt, string error, CancellationToken cancellationToken)
    {
        await using var executor = await OpenAsync(cancellationToken, pooled: false).ConfigureAwait(false);
        await using var command = Command(executor.Connection, null,
            $"UPDATE {S} SET \"ClaimToken\" = NULL, \"ClaimedUntil\" = @p1, \"LastError\" = @p2, \"Attempts\" = \"Attempts\" + 1 " +
            "WHERE \"Id\" = @p0 AND \"ClaimToken\" = @p3",
            id, retryAt, error, claimToken);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Gives back claimed messages that were not sent (the dispatcher is stopping): pending again at once.</summary>
    public async Task ReleaseAsync(Guid claimToken, IReadOnlyCollection<Guid> ids, CancellationToken cancellationToken)
    {
        if (ids.Count == 0)
        {
            return;
        }

        await using var executor = await OpenAsync(cancellationToken, pooled: false).ConfigureAwait(false);
        await using var command = Command(executor.Connection, null,
            $"UPDATE {S} SET \"State\" = {Pending}, \"ClaimToken\" = NULL, \"ClaimedUntil\" = NULL " +
            $"WHERE {_database.InIdList("\"Id\"", "@p0")} AND \"ClaimToken\" = @p1",
            _database.IdList(ids), claimToken);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>When the next message falls due: the earliest pending time, or the earliest claim that runs out.</summary>
    public Task<DateTime?> NextDueAsync(CancellationToken cancellationToken) => NextDueAsync(null, cancellationToken);

    /// <summary>As <see cref="NextDueAsync(CancellationToken)"/>, among the messages <paramref name="brokers"/> can send (see <see cref="ClaimDueAsync(Guid, DateTime, TimeSpan, int, IReadOnlyList{string}, CancellationToken)"/>).</summary>
    public async Task<DateTime?> NextDueAsync(IReadOnlyList<string>? brokers, CancellationToken cancellationToken)
    {
        await using var executor = await OpenAsync(cancellationToken, pooled: false).ConfigureAwait(false);
        object?[] values = [];
        var routable = Routable(brokers, ref values);
        var pending = await MinAsync(executor.Connection, $"SELECT MIN(\"ScheduledTime\") FROM {S} WHERE \"State\" = {Pending}{routable}", values, cancellationToken)
            .ConfigureAwait(false);
        var claims = await MinAsync(executor.Connection, $"SELECT MIN(\"ClaimedUntil\") FROM {S} WHERE \"State\" = {Dispatching}{routable}", values, cancellationToken)
            .ConfigureAwait(false);
        return pending is { } p && claims is { } c ? (p < c ? p : c) : pending ?? claims;
    }

    /// <summary>
    /// The pending messages due before <paramref name="dueBefore"/> that none of <paramref name="brokers"/> can send (for a
    /// bus of another process, or of no running process): how many, and the earliest one's destination and due time.
    /// </summary>
    public async Task<(int Count, string? Destination, DateTime? ScheduledTime)> StrandedAsync(
        IReadOnlyList<string> brokers, DateTime dueBefore, CancellationToken cancellationToken)
    {
        if (brokers.Count == 0)
        {
            return (0, null, null);
        }

        await using var executor = await OpenAsync(cancellationToken, pooled: false).ConfigureAwait(false);
        object?[] values = [dueBefore];
        var where = $"WHERE \"State\" = {Pending} AND \"ScheduledTime\" < @p0 AND NOT{Routable(brokers, ref values)[" AND".Length..]}";
        await using var command = Command(executor.Connection, null,
            $"SELECT \"Destination\", \"ScheduledTime\", (SELECT COUNT(*) FROM {S} {where}) FROM {S} {where} ORDER BY \"ScheduledTime\" LIMIT 1", values);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? (Convert.ToInt32(reader.GetValue(2), CultureInfo.InvariantCulture), reader.GetString(0), ReadDateTime(reader, 1))
            : (0, null, null);
    }

    /// <summary>
    /// <c> AND (…)</c>: the destination is not an absolute address (<c>queue:name</c>, sent through any bus), or starts with
    /// one of <paramref name="brokers"/>; their values are appended to <paramref name="values"/> as parameters.
    /// </summary>
    private static string Routable(IReadOnlyList<string>? brokers, ref object?[] values)
    {
        if (brokers is not { Count: > 0 })
        {
            return "";
        }

        var sql = new System.Text.StringBuilder(" AND (\"Destination\" NOT LIKE '%://%'");
        var all = new List<object?>(values);
        foreach (var broker in brokers)
        {
            sql.Append(System.Globalization.CultureInfo.InvariantCulture,
                $" OR lower(substr(\"Destination\", 1, {broker.Length})) = @p{all.Count}");
            all.Add(broker.ToLowerInvariant());
        }

        values = [.. all];
        return sql.Append(')').ToString();
    }

    /// <summary>Deletes up to <paramref name="max"/> sent or cancelled messages finished before <paramref name="before"/>.</summary>
    public async Task<int> PurgeAsync(DateTime before, int max, CancellationToken cancellationToken)
    {
        await using var executor = await OpenAsync(cancellationToken, pooled: false).ConfigureAwait(false);
        await using var command = Command(executor.Connection, null,
            $"DELETE FROM {S} WHERE \"Id\" IN (SELECT \"Id\" FROM {S} WHERE (\"State\" = {Sent} AND \"SentAt\" < @p0) " +
            $"OR (\"State\" = {Cancelled} AND \"CancelledAt\" < @p0) LIMIT @p1{_database.SkipLocked})",
            before, max);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task ExpireTaskAsync(
        DbConnection connection,
        DbTransaction? transaction,
        Guid taskId,
        string? messageType,
        string destination,
        DateTime dispatchedAt,
        DateTime eta,
        DateTime now,
        string reason,
        CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction,
            _expireTask,
            taskId, TypeName(messageType), QueueName(destination), dispatchedAt, eta, now, reason);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A placeholder task name from a message type urn (<c>urn:message:Shop:ChargeCard</c> → <c>ChargeCard</c>).</summary>
    internal static string TypeName(string? messageType)
    {
        if (string.IsNullOrEmpty(messageType))
        {
            return "(scheduled message)";
        }

        var end = messageType.IndexOf('[', StringComparison.Ordinal);
        var head = end >= 0 ? messageType[..end] : messageType;
        var colon = head.LastIndexOf(':');
        var name = colon >= 0 ? head[(colon + 1)..] : head;
        return name.Length > LedgerModel.NameLength ? name[..LedgerModel.NameLength] : name;
    }

    /// <summary>The last path segment of an address, without a <c>queue:</c>/<c>exchange:</c> prefix.</summary>
    internal static string? QueueName(string destination)
    {
        if (string.IsNullOrEmpty(destination))
        {
            return null;
        }

        var path = Uri.TryCreate(destination, UriKind.Absolute, out var uri) ? uri.AbsolutePath : destination;
        var name = path[(path.LastIndexOf('/') + 1)..];
        var colon = name.IndexOf(':', StringComparison.Ordinal);
        if (name.StartsWith("queue:", StringComparison.Ordinal) || name.StartsWith("exchange:", StringComparison.Ordinal))
        {
            name = name[(colon + 1)..];
        }

        name = Uri.UnescapeDataString(name);
        return name.Length > LedgerModel.NameLength ? name[..LedgerModel.NameLength] : name;
    }

    private async Task<DateTime?> MinAsync(DbConnection connection, string sql, object?[] values, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, null, sql, values);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) && !reader.IsDBNull(0) ? ReadDateTime(reader, 0) : null;
    }

    /// <param name="cancellationToken">Cancels the open.</param>
    /// <param name="pooled">
    /// False for the dispatcher's calls (its poll every <c>PollInterval</c>, and the claims and marks of due messages,
    /// a hundred at a time): their sessions are closed, not kept idle in a pool no other process can use (session 32).
    /// The consumer's calls (a <c>ScheduleMessage</c> or a cancellation waits on them) keep a pooled session: an
    /// unpooled open costs a new server session, tens of milliseconds.
    /// </param>
    private Task<SqlExecutor> OpenAsync(CancellationToken cancellationToken, bool pooled = true) =>
        _database.OpenAsync(contexts.ConnectionString, cancellationToken, TimeSpan.FromSeconds(30), pooled: pooled);

    private DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql, params object?[] values) =>
        _database.Command(connection, transaction, sql, values);

    private Guid ReadGuid(DbDataReader reader, int ordinal) => _database.ReadGuid(reader, ordinal);

    private Guid? ReadNullableGuid(DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : ReadGuid(reader, ordinal);

    private DateTime ReadDateTime(DbDataReader reader, int ordinal) => _database.ReadUtc(reader, ordinal);
}

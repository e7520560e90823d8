using Microsoft.EntityFrameworkCore;

namespace JobLog;

/// <summary>The table layout. Table and column names are also used by the raw SQL of the write path.</summary>
internal static class LedgerModel
{
    internal const string Tasks = "JobLogTasks";
    internal const string Runs = "JobLogTaskRuns";
    internal const string Commands = "JobLogCommands";
    internal const string InputRequests = "JobLogInputRequests";
    internal const string OutputRequests = "JobLogOutputRequests";
    internal const string RelatedObjects = "JobLogOutputRequestRelatedObjects";
    internal const string ScheduledMessages = "JobLogScheduledMessages";
    internal const string Hosts = "JobLogHosts";
    internal const string KeptMessages = "JobLogKeptMessages";
    internal const string FailureActions = "JobLogFailureActions";
    internal const string FailureActionItems = "JobLogFailureActionItems";

    internal const int NameLength = 250;

    /// <summary>The longest <see cref="HostLog.Stranded"/> line (its kinds joined, cut with an ellipsis).</summary>
    internal const int StrandedLength = 1000;

    /// <summary>The longest <see cref="HostLog.WriterError"/> (cut with an ellipsis).</summary>
    internal const int WriterErrorLength = 500;

    internal const string UnfinishedStaleIndex = "IX_JobLogTasks_Unfinished_Stale";

    /// <summary>
    /// The filter of the sweeper's partial index: tasks that may still go stale. Equalities, not <c>"State" IN (1, 2, 5)</c>:
    /// SQLite evaluates a partial index's filter for every row an INSERT writes and twice for every UPDATE of
    /// <c>State</c>, and an IN list of more than two constants builds a temporary b-tree each time (<c>OpenEphemeral</c>),
    /// which cost the writer ~30,000 instructions a task inserted and ~60,000 a task derived (docs/benchmarks.md,
    /// "Session 11 (sqlwriter)").
    /// </summary>
    internal const string UnfinishedStaleFilter = "(\"State\" = 1 OR \"State\" = 2 OR \"State\" = 5) AND \"IsSetAsStale\" = FALSE AND \"Stale\" IS NOT NULL";

    /// <summary>The partial index of open failures: failed tasks without a resolution.</summary>
    internal const string UnresolvedFailuresIndex = "IX_JobLogTasks_UnresolvedFailures";

    /// <summary>
    /// SQLite's index of a queue's runs in start order, in place of the model's <c>(QueueName, TaskId)</c> (migration
    /// <c>SqliteRunQueueIndex</c>): a key that appends, where a task id scatters.
    /// </summary>
    internal const string RunsQueueStartIndex = "IX_JobLogTaskRuns_QueueName_Start_TaskId";

    internal static void Configure(ModelBuilder b)
    {
        JobLog.Storage.LedgerRollups.Configure(b);
        JobLog.Storage.RunRollups.Configure(b);
        JobLog.Storage.FailureGroupRollup.Configure(b);
        b.Entity<TaskLog>(e =>
        {
            e.ToTable(Tasks);
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).ValueGeneratedNever();
            e.Ignore(x => x.TaskId);
            e.Property(x => x.Name).HasMaxLength(NameLength).IsRequired();
            e.Property(x => x.QueueName).HasMaxLength(NameLength);
            e.Property(x => x.TraceId).HasMaxLength(64);
            e.Property(x => x.Host).HasMaxLength(NameLength);
            e.Property(x => x.Release).HasMaxLength(NameLength);
            e.Property(x => x.Slug).HasMaxLength(NameLength);
            e.Property(x => x.SourceAddress).HasMaxLength(2000);
            // The sweeper: unfinished tasks whose stale deadline passed. Partial, so that it holds only the tasks the sweeper
            // may expire: a task without a stale deadline, or finished, costs it nothing on insert or state change, and
            // the claim walks it in Stale order (the sweeper's WHERE repeats this filter word for word).
            e.HasIndex(x => x.Stale).HasDatabaseName(UnfinishedStaleIndex).HasFilter(UnfinishedStaleFilter);
            // The dashboard: newest tasks of one name, optionally of one state.
            e.HasIndex(x => new { x.Name, x.DispatchedAt });
            // The newest tasks of one name in one state, however rare that state is for the name (docs/scale.md).
            e.HasIndex(x => new { x.Name, x.State, x.DispatchedAt });
            e.HasIndex(x => new { x.State, x.DispatchedAt });
            // No (IsInternal, State, DispatchedAt): SQLite's plans never read it (EF Core writes NOT "IsInternal", not an
            // equality an index can seek), PostgreSQL's state lists read (State, DispatchedAt) as well without it, and
            // each task paid an entry on insert and a move on every state change (docs/benchmarks.md, "Session 11 (sqlwriter)").
            e.HasIndex(x => x.DispatchedAt);
            // A rare queue's tasks, listed before the page is read (LedgerQueries.FewTasksOfQueueAsync).
            e.HasIndex(x => new { x.QueueName, x.DispatchedAt });
            // The list of MassTransit's own messages only (internal=true): without it that list walked every task (0.6–2.8 s
            // at 1 M, docs/scale.md "Session 11 (lead)"); only internal tasks have an entry.
            e.HasIndex(x => x.DispatchedAt, "IX_JobLogTasks_Internal_DispatchedAt").HasFilter("\"IsInternal\"");
            // PostgreSQL's only in effect: the SQLite migration SqliteTaskStopIndex drops it (no SQLite plan needs it, and each
            // task derived after its dispatch paid a move in it; docs/benchmarks.md "Session 35 (perf)").
            e.HasIndex(x => x.Stop);
            // Children of a run: only tasks dispatched from inside a consumer have a parent.
            e.HasIndex(x => x.ParentRunId).HasFilter("\"ParentRunId\" IS NOT NULL");
            // Tasks of a request: only tasks dispatched while serving a request have one.
            e.HasIndex(x => x.InputRequestId).HasFilter("\"InputRequestId\" IS NOT NULL");
            // Open failures (failure groups, retries): failed tasks no operator has resolved.
            e.HasIndex(x => x.DispatchedAt, UnresolvedFailuresIndex).HasFilter("\"State\" = 4 AND \"Resolution\" IS NULL");
            // An open failure's group under each grouping, and the failure time they were computed for (shadow columns:
            // JobLog.Querying.FailureGroupColumns; docs/scale.md "Session 13 (failgroup)").
            // Only their fill writes them (raw SQL): EF leaves them out of its INSERTs and UPDATEs, so that an entity saved
            // through EF, onto a ledger of any version, never names them.
            foreach (var column in new[] { JobLog.Querying.FailureGroupColumns.Exception, JobLog.Querying.FailureGroupColumns.Type, JobLog.Querying.FailureGroupColumns.Queue })
            {
                ReadOnly(e.Property<string?>(column).HasMaxLength(16));
            }

            ReadOnly(e.Property<DateTime?>(JobLog.Querying.FailureGroupColumns.At));
            // The search box's exact lookups (docs/search.md): only tasks that carry the id are in these.
            e.HasIndex(x => x.CorrelationId).HasFilter("\"CorrelationId\" IS NOT NULL");
            e.HasIndex(x => x.ConversationId).HasFilter("\"ConversationId\" IS NOT NULL");
            e.HasIndex(x => x.TraceId).HasFilter("\"TraceId\" IS NOT NULL");
            e.HasMany(x => x.Runs).WithOne(x => x.Task!).HasForeignKey(x => x.TaskId)
                .OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<TaskRunLog>(e =>
        {
            e.ToTable(Runs);
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).ValueGeneratedNever();
            e.Property(x => x.Name).HasMaxLength(NameLength).IsRequired();
            e.Property(x => x.QueueName).HasMaxLength(NameLength);
            e.Property(x => x.ConsumerType).HasMaxLength(NameLength).IsRequired();
            e.Property(x => x.Host).HasMaxLength(NameLength);
            // Run numbering and the task-state derivation: runs of one task and consumer.
            e.HasIndex(x => new { x.TaskId, x.ConsumerType, x.Retries });
            // No (State, Start): no query reads runs by state alone (ACTIVE runs are found through the partial HostInstanceId
            // index or by task), and the index cost the SQLite writer ~10 µs a run (docs/benchmarks.md, "Session 9 (sqlcpu)").
            // The run rollup's recount of a minute's longest run reads (Name, Start).
            e.HasIndex(x => new { x.Name, x.Start });
            // The queue filter: tasks one of whose runs was consumed from the queue (docs/scale.md). PostgreSQL's only: SQLite
            // has (QueueName, Start, TaskId) instead (migration SqliteRunQueueIndex, LedgerQueries.SentToOrConsumedFromOnSqlite).
            e.HasIndex(x => new { x.QueueName, x.TaskId });
            // The sweeper: ACTIVE runs of a host instance whose heartbeat stopped. SQLite's only: PostgreSQL reads its side table
            // of open runs instead, so that a run's finish is a HOT update (Storage/PostgreSql/OpenRuns.cs).
            e.HasIndex(x => x.HostInstanceId).HasFilter("\"State\" = 1 AND \"HostInstanceId\" IS NOT NULL");
        });
        b.Entity<HostLog>(e =>
        {
            e.ToTable(Hosts);
            e.HasKey(x => x.InstanceId);
            e.Property(x => x.InstanceId).ValueGeneratedNever();
            e.Property(x => x.Name).HasMaxLength(NameLength).IsRequired();
            e.Property(x => x.Release).HasMaxLength(NameLength);
            e.Property(x => x.Stranded).HasMaxLength(StrandedLength);
            e.Property(x => x.WriterError).HasMaxLength(WriterErrorLength);
        });
        b.Entity<CommandLog>(e =>
        {
            e.ToTable(Commands);
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).ValueGeneratedNever();
            e.Property(x => x.Name).HasMaxLength(NameLength).IsRequired();
            e.Property(x => x.Host).HasMaxLength(NameLength);
            e.HasIndex(x => new { x.Name, x.Start });
            e.HasIndex(x => x.Start);
            e.HasIndex(x => x.Stop);
            // The outcome filter: running commands (IsSuccessful IS NULL) are few, and the time index walked every command to
            // find them (docs/scale.md "Session 27 (scale)"). Commands are rare writes: one entry each, moved once at the end.
            e.HasIndex(x => new { x.IsSuccessful, x.Start });
        });
        b.Entity<InputRequestLog>(e =>
        {
            e.ToTable(InputRequests);
            ConfigureRequest(e);
            e.Property(x => x.UserId).HasMaxLength(NameLength);
            e.Property(x => x.Ip).HasMaxLength(64);
            e.HasIndex(x => new { x.Ip, x.RequestTimestamp });
            // The user filter. Partial: a request has no user at its start (the middleware reads it at the end) nor when
            // anonymous, and such a row costs the writer no entry; `UserId = @user` implies the filter on both databases.
            e.HasIndex(x => new { x.UserId, x.RequestTimestamp }).HasFilter("\"UserId\" IS NOT NULL");
        });
        b.Entity<OutputRequestLog>(e =>
        {
            e.ToTable(OutputRequests);
            ConfigureRequest(e);
            e.HasIndex(x => x.InputRequestId);
            e.HasMany(x => x.RelatedObjects).WithOne().HasForeignKey(x => x.OutputRequestId)
                .OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<OutputRequestRelatedObject>(e =>
        {
            e.ToTable(RelatedObjects);
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).ValueGeneratedNever();
            e.Property(x => x.ContentType).HasMaxLength(NameLength);
            e.Property(x => x.ObjectId).HasMaxLength(NameLength);
            e.HasIndex(x => x.TaskRunLogId);
            e.HasIndex(x => x.CommandLogId);
            e.HasIndex(x => new { x.ContentType, x.ObjectId });
        });
        b.Entity<ScheduledMessageLog>(e =>
        {
            e.ToTable(ScheduledMessages);
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).ValueGeneratedNever();
            e.Property(x => x.MessageType).HasMaxLength(1000);
            e.Property(x => x.Destination).HasMaxLength(2000).IsRequired();
            e.Property(x => x.ContentType).HasMaxLength(NameLength).IsRequired();
            e.Property(x => x.Host).HasMaxLength(NameLength);
            e.Property(x => x.SentBy).HasMaxLength(NameLength);
            // The dispatcher: the next due pending message, and expired claims.
            e.HasIndex(x => new { x.State, x.ScheduledTime });
            e.HasIndex(x => new { x.State, x.ClaimedUntil });
            e.HasIndex(x => x.MessageId);
        });
        ConfigureFailures(b);
    }

    /// <summary>Kept failed messages and the operators' actions on failures (docs/architecture.md#failures).</summary>
    private static void ConfigureFailures(ModelBuilder b)
    {
        b.Entity<KeptMessageLog>(e =>
        {
            e.ToTable(KeptMessages);
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).ValueGeneratedNever();
            e.Property(x => x.ConsumerType).HasMaxLength(NameLength).IsRequired();
            e.Property(x => x.InputAddress).HasMaxLength(2000).IsRequired();
            e.Property(x => x.ContentType).HasMaxLength(NameLength);
            e.Property(x => x.ExceptionType).HasMaxLength(NameLength);
            e.HasIndex(x => new { x.TaskId, x.KeptAt });
            e.HasIndex(x => x.KeptAt);
        });
        b.Entity<FailureActionLog>(e =>
        {
            e.ToTable(FailureActions);
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).ValueGeneratedNever();
            e.Property(x => x.RequestedBy).HasMaxLength(NameLength).IsRequired();
            e.Property(x => x.Selection).HasMaxLength(2000);
            e.HasIndex(x => x.RequestedAt);
        });
        b.Entity<FailureActionItemLog>(e =>
        {
            e.ToTable(FailureActionItems);
            // A task appears once per action.
            e.HasKey(x => new { x.ActionId, x.TaskId });
            e.HasIndex(x => x.TaskId);
            // The sender: pending and claimed retries.
            e.HasIndex(x => new { x.State, x.ClaimedAt }).HasFilter("\"State\" IN (0, 1)");
            // One retry in progress per task, whichever request it came from.
            e.HasIndex(x => x.TaskId, "IX_JobLogFailureActionItems_RetryInProgress").IsUnique().HasFilter("\"State\" IN (0, 1)");
        });
    }

    private static void ConfigureRequest<T>(Microsoft.EntityFrameworkCore.Metadata.Builders.EntityTypeBuilder<T> e)
        where T : RequestLogBase
    {
        e.HasKey(x => x.Id);
        e.Property(x => x.Id).ValueGeneratedNever();
        e.Property(x => x.Host).HasMaxLength(NameLength).IsRequired();
        e.Property(x => x.Method).HasMaxLength(16).IsRequired();
        e.Property(x => x.Path).HasMaxLength(2000).IsRequired();
        e.Property(x => x.Slug).HasMaxLength(NameLength);
        e.Property(x => x.ExceptionName).HasMaxLength(NameLength);
        e.HasIndex(x => x.RequestTimestamp);
        e.HasIndex(x => new { x.Slug, x.RequestTimestamp });
        e.HasIndex(x => new { x.Status, x.RequestTimestamp });
        // The method and host filters: without them a rare value's page walked the time index through every request
        // (262,144 requests: 120–200 ms on PostgreSQL, 63–139 ms on SQLite; docs/scale.md "Session 27 (scale)").
        e.HasIndex(x => new { x.Method, x.RequestTimestamp });
        e.HasIndex(x => new { x.Host, x.RequestTimestamp });
        e.HasIndex(x => x.ResponseTimestamp);
    }

    private static void ReadOnly(Microsoft.EntityFrameworkCore.Metadata.Builders.PropertyBuilder property)
    {
        property.Metadata.SetBeforeSaveBehavior(Microsoft.EntityFrameworkCore.Metadata.PropertySaveBehavior.Ignore);
        property.Metadata.SetAfterSaveBehavior(Microsoft.EntityFrameworkCore.Metadata.PropertySaveBehavior.Ignore);
    }
}

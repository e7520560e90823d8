using System.ComponentModel.DataAnnotations;
using JobLog.Internal;
using JobLog.Querying;

namespace JobLog.AspNetCore.Dashboard;

/// <summary>
/// Who may act on failures from the dashboard (retry, resolve, archive): <c>o.Actions.RequireAuthorization("joblog-operator")</c>.
/// Off by default: without a policy the dashboard stays read-only and every action answers 403, whoever asks. Reads stay
/// behind the dashboard's own policy; an action needs both. Actions are POSTs protected by ASP.NET Core antiforgery (the
/// application calls <c>services.AddAntiforgery()</c>), and act through the <c>IFailureActions</c> the application
/// registered.
/// </summary>
public sealed class JobLogDashboardActionsOptions
{
    /// <summary>The authorization policy an operator must pass; null (the default) turns failure actions off.</summary>
    public string? Policy { get; private set; }

    /// <summary>
    /// The most failures one action on a whole group or filter takes (the newest first). Default 10,000; 1 to
    /// <see cref="LedgerQueries.MaxFailuresScanned"/>.
    /// </summary>
    [Between(1, LedgerQueries.MaxFailuresScanned)]
    public int MaxTasksPerAction { get; set; } = LedgerQueries.MaxFailuresScanned;

    /// <summary>The longest note an operator may leave with an action. Default 2,000 characters; at least 1.</summary>
    [AtLeast(1)]
    public int MaxNoteLength { get; set; } = 2000;

    /// <summary>Turns failure actions on for users who pass <paramref name="policy"/>.</summary>
    /// <param name="policy">The name of an authorization policy the application registered.</param>
    /// <returns>These options.</returns>
    /// <exception cref="ArgumentException"><paramref name="policy"/> is null or blank.</exception>
    public JobLogDashboardActionsOptions RequireAuthorization(string policy)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(policy);
        Policy = policy;
        return this;
    }

    /// <summary>Whether failure actions are on.</summary>
    internal bool Enabled => Policy is not null;
}

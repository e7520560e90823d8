using JobLog.AspNetCore.Dashboard.Queries;
using Microsoft.AspNetCore.Http;

namespace JobLog.AspNetCore.Dashboard;

/// <summary>Options of <c>app.MapJobLogDashboard(...)</c>.</summary>
public sealed class JobLogDashboardOptions
{
    /// <summary>Shown in the header and the window title. Default <c>JobLog</c>.</summary>
    public string Title { get; set; } = "JobLog";

    /// <summary>Rows per page when the request does not say (<c>limit</c>, at most 500). Default 50.</summary>
    public int PageSize { get; set; } = ListFilter.DefaultLimit;

    /// <summary>How often live pages poll the server. Default 5 s; <see cref="TimeSpan.Zero"/> turns live refresh off.</summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Allows actions that change the ledger or the bus from the dashboard (POST, same-origin only). Default false: the
    /// dashboard is read-only. No action ships yet: re-publishing a FAILED or EXPIRED task needs the original message
    /// body, which the ledger does not store (its <c>TaskKwargs</c> are masked and truncated, so replaying them would
    /// not be the original message).
    /// </summary>
    public bool EnableActions { get; set; }

    /// <summary>Task actions offered when <see cref="EnableActions"/> is on.</summary>
    internal List<DashboardTaskAction> TaskActions { get; } = [];
}

/// <summary>An action on one task (a button on its page, a POST endpoint).</summary>
/// <param name="Name">URL segment, e.g. <c>republish</c>.</param>
/// <param name="Label">Button text.</param>
/// <param name="IsAvailable">Whether the task's page offers it.</param>
/// <param name="ExecuteAsync">Runs it; returns a message for the user. Throws <see cref="InvalidOperationException"/> to refuse.</param>
internal sealed record DashboardTaskAction(
    string Name,
    string Label,
    Func<TaskDetail, bool> IsAvailable,
    Func<HttpContext, TaskDetail, CancellationToken, Task<string>> ExecuteAsync);

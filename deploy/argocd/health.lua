-- Argo CD health of an amplifybackend.gitops.dev BackendAuth, read from its kstatus conditions.
-- Install: deploy/argocd/argocd-cm.yaml (key resource.customizations.health.amplifybackend.gitops.dev_BackendAuth).
-- Argo CD runs this with only its base, table and package libraries: no string methods here.
--   Stalled=True (for the current generation)        -> Degraded, with the Stalled message
--   paused (annotation, or reason Paused)             -> Suspended (Ready may stay True meanwhile)
--   Ready=True and observedGeneration == generation   -> Healthy
--   anything else, or no status yet                  -> Progressing
local hs = {}
local PAUSED = "amplifybackend.gitops.dev/paused"

local function condition(status, ctype)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function message_of(c)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return nil
end

local generation = nil
local annotations = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
  annotations = obj.metadata.annotations
end
local status = obj.status
local observed = nil
if status ~= nil then
  observed = status.observedGeneration
end
-- The status describes an older spec until the operator has observed the current generation.
local stale = generation ~= nil and observed ~= generation

local ready = condition(status, "Ready")
local reconciling = condition(status, "Reconciling")
local stalled = condition(status, "Stalled")

if stalled ~= nil and stalled.status == "True" and not stale then
  hs.status = "Degraded"
  hs.message = message_of(stalled) or stalled.reason or "Stalled"
  return hs
end

local flag = nil
if annotations ~= nil then
  flag = annotations[PAUSED]
end
local annotated = flag == "true" or flag == "True" or flag == "TRUE"
-- Every condition carries the one reason: Reconciling=True when paused before the auth resource
-- was ready, Ready=True (Reconciling=False) when paused after.
local shows_paused = reconciling ~= nil and reconciling.reason == "Paused"
if annotated or shows_paused then
  hs.status = "Suspended"
  if shows_paused then
    hs.message = message_of(reconciling)
  end
  hs.message = hs.message or ("Paused by the " .. PAUSED .. " annotation")
  return hs
end

if ready ~= nil and ready.status == "True" and not stale then
  hs.status = "Healthy"
  hs.message = message_of(ready) or ""
  return hs
end

hs.status = "Progressing"
if stale and status ~= nil and status.conditions ~= nil then
  hs.message = "Waiting for the operator to observe generation " .. generation
else
  hs.message = message_of(reconciling) or message_of(ready) or "Waiting for the operator"
end
return hs

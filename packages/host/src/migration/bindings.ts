/**
 * The classic resource-binding table of process and code migration (Fuggetta, Picco and Vigna, "Understanding
 * Code Mobility", 1998), as REFERENCE.md gives it: what happens to each resource a container declares
 * when the container moves from `source` to `destination`.
 *
 *                   unattached   fastened   fixed
 *   by identifier   move         GR         GR
 *   by value        copy         GR         GR
 *   by type         rebind       rebind     rebind
 *
 * move: the resource goes along (it is on the destination now); copy: the destination gets a copy and the
 * original stays; global reference (GR): it stays on the source and the container reaches it remotely;
 * rebind: the container takes the destination's own resource of that type.
 */
import type { Resource, ResourceMove } from '@slicelab/protocol';

export function bindingAction(resource: Pick<Resource, 'binding' | 'attachment'>): ResourceMove['action'] {
  if (resource.binding === 'type') return 'rebind';
  if (resource.attachment !== 'unattached') return 'global-reference';
  return resource.binding === 'identifier' ? 'move' : 'copy';
}

/** What the container's resources become on `destination`, and the report of what was done with each. */
export function moveResources(resources: readonly Resource[], destination: string): { resources: Resource[]; moves: ResourceMove[] } {
  const moves: ResourceMove[] = [];
  const moved = resources.map((resource) => {
    const action = bindingAction(resource);
    const location = action === 'global-reference' ? resource.location : destination;
    moves.push({
      name: resource.name, binding: resource.binding, attachment: resource.attachment, action,
      before: `${resource.value}@${resource.location}`, after: `${resource.value}@${location}`,
    });
    return { ...resource, location };
  });
  return { resources: moved, moves };
}
